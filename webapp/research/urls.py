"""Researchers' URLs, all under research/ (the app is mounted at the site's root)."""
from django.urls import path

from . import views

app_name = "research"

urlpatterns = [
    path("research/", views.home, name="home"),
    path("research/login/", views.LoginView.as_view(), name="login"),
    path("research/logout/", views.LogoutView.as_view(), name="logout"),
    path("research/<slug:slug>/", views.dashboard, name="dashboard"),
    path("research/<slug:slug>/progress.json", views.progress_json, name="progress_json"),
    path("research/<slug:slug>/results.json", views.results_json, name="results_json"),
    path("research/<slug:slug>/results/update/", views.results_update, name="results_update"),
    path("research/<slug:slug>/report-details/", views.report_details, name="report_details"),
    path("research/<slug:slug>/figures/<slug:name>.<str:fmt>", views.figure, name="figure"),
    path("research/<slug:slug>/export/responses.csv", views.export_csv, name="export_csv"),
    path("research/<slug:slug>/export/responses.jsonl", views.export_jsonl, name="export_jsonl"),
    path("research/<slug:slug>/export/aggregates.json", views.export_aggregates, name="export_aggregates"),
    path("research/<slug:slug>/export/figures.zip", views.export_figures, name="export_figures"),
    path("research/<slug:slug>/export/protocol.json", views.export_protocol, name="export_protocol"),
    path("research/<slug:slug>/report/", views.report_html, name="report_html"),
    path("research/<slug:slug>/report.md", views.report_md, name="report_md"),
]
