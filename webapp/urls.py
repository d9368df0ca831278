"""URL map: evaluators under /join, /e and /i; researchers under /research; admins under /admin and /generation."""
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # Browsers ask for /favicon.ico on their own (the admin's pages, JSON, files opened directly).
    path("favicon.ico", RedirectView.as_view(url=static("studies/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("generation/", include("webapp.generation.urls")),
    path("", include("webapp.research.urls")),
    path("", include("webapp.studies.urls")),
]
