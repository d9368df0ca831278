from django.urls import path

from . import views

app_name = "generation"

urlpatterns = [
    path("", views.index, name="index"),
    path("checkpoints/register/", views.register_checkpoint, name="register_checkpoint"),
    path("study/<slug:slug>/", views.study, name="study"),
    path("study/<slug:slug>/launch/", views.launch, name="launch"),
    path("study/<slug:slug>/images/", views.import_images, name="import_images"),
    path("study/<slug:slug>/manifest.csv", views.manifest_template, name="manifest_template"),
    path("study/<slug:slug>/checkpoints/", views.assign_checkpoints, name="assign_checkpoints"),
    path("batch/<int:pk>/progress.json", views.progress, name="progress"),
    path("batch/<int:pk>/retry/", views.retry, name="retry"),
    path("batch/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("import/<int:pk>/status.json", views.import_status, name="import_status"),
]
