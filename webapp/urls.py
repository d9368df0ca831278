"""URL map: evaluators under /join, /e and /i; researchers under /research; admins under /admin and /generation."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("generation/", include("webapp.generation.urls")),
    path("", include("webapp.research.urls")),
    path("", include("webapp.studies.urls")),
]
