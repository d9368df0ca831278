from django.urls import path

from . import preview_views, researcher_views, views

app_name = "studies"

urlpatterns = [
    path("join/<str:invite_token>/", views.join, name="join"),
    path("join/<str:invite_token>/continue/", views.join_continue, name="join_continue"),
    path("e/<slug:slug>/consent/", views.consent, name="consent"),
    path("e/<slug:slug>/instructions/", views.instructions, name="instructions"),
    path("e/<slug:slug>/practice/", views.practice, name="practice"),
    path("e/<slug:slug>/practice/<str:name>.png", views.practice_image, name="practice_image"),
    path("e/<slug:slug>/task/", views.task, name="task"),
    path("e/<slug:slug>/undo/", views.undo, name="undo"),
    path("e/<slug:slug>/state/", views.state, name="state"),
    path("e/<slug:slug>/done/", views.done, name="done"),
    path("i/<str:public_id>", views.image, name="image"),
    # Researchers running a study (the research app's dashboard links here).
    path("run/new/", researcher_views.study_new, name="run_new"),
    path("run/<slug:slug>/", researcher_views.study_run, name="run"),
    path("run/<slug:slug>/status/", researcher_views.study_status, name="run_status"),
    path("run/<slug:slug>/participants/", researcher_views.study_participants, name="participants"),
    path("run/<slug:slug>/rehearsal/", researcher_views.study_rehearsal_copy, name="rehearsal_copy"),
    path("run/<slug:slug>/preview/", preview_views.preview_start, name="preview_start"),
    path("run/<slug:slug>/preview/task/", preview_views.preview_task, name="preview_task"),
    path("run/<slug:slug>/preview/end/", preview_views.preview_end, name="preview_end"),
    path("run/<slug:slug>/participants.csv", researcher_views.study_participants_csv, name="participants_csv"),
]
