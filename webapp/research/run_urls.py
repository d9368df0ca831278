"""The researchers' pages for running a study, under /run/ (the dashboard links here).

Their URL names are in the ``studies`` namespace (``studies:run``, ``studies:participants``,
...), which webapp/urls.py gives to these patterns and the evaluators' together: the names
and paths are older than this module, and templates, code and tests link to them by name.
"""
from django.urls import path

from . import preview_views, run_views

urlpatterns = [
    path("run/new/", run_views.study_new, name="run_new"),
    path("run/<slug:slug>/", run_views.study_run, name="run"),
    path("run/<slug:slug>/status/", run_views.study_status, name="run_status"),
    path("run/<slug:slug>/participants/", run_views.study_participants, name="participants"),
    path("run/<slug:slug>/participants/release/", run_views.study_release_place, name="release_place"),
    path("run/<slug:slug>/rehearsal/", run_views.study_rehearsal_copy, name="rehearsal_copy"),
    path("run/<slug:slug>/preview/", preview_views.preview_start, name="preview_start"),
    path("run/<slug:slug>/preview/task/", preview_views.preview_task, name="preview_task"),
    path("run/<slug:slug>/preview/end/", preview_views.preview_end, name="preview_end"),
    path("run/<slug:slug>/participants.csv", run_views.study_participants_csv, name="participants_csv"),
]
