"""The evaluators' URLs: joining, the tasks, the images (the researchers' /run/ pages share
the ``studies`` namespace from webapp.research.run_urls; see webapp/urls.py)."""
from django.urls import path

from . import task_views, views

app_name = "studies"

urlpatterns = [
    path("join/<str:invite_token>/", views.join, name="join"),
    path("join/<str:invite_token>/continue/", views.join_continue, name="join_continue"),
    path("e/<slug:slug>/consent/", views.consent, name="consent"),
    path("e/<slug:slug>/instructions/", views.instructions, name="instructions"),
    path("e/<slug:slug>/practice/", views.practice, name="practice"),
    path("e/<slug:slug>/practice/<str:name>.png", views.practice_image, name="practice_image"),
    path("e/<slug:slug>/task/", task_views.task, name="task"),
    path("e/<slug:slug>/undo/", task_views.undo, name="undo"),
    path("e/<slug:slug>/away/", task_views.away, name="away"),
    path("e/<slug:slug>/state/", task_views.state, name="state"),
    path("e/<slug:slug>/done/", task_views.done, name="done"),
    path("i/<str:key>", task_views.image, name="image"),
]
