"""URL map: a front page at /; evaluators under /join, /e and /i; researchers under /research; admins under
/admin and /generation."""
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from webapp import views
from webapp.research import run_urls
from webapp.studies import urls as studies_urls

handler400 = "webapp.views.bad_request"

urlpatterns = [
    path("", views.index, name="index"),
    # Browsers ask for /favicon.ico on their own (the admin's pages, JSON, files opened directly).
    path("favicon.ico", RedirectView.as_view(url=static("studies/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("generation/", include("webapp.generation.urls")),
    path("", include("webapp.research.urls")),
    # One namespace, "studies", for the evaluators' pages and the researchers' /run/ pages
    # (webapp.research.run_urls), whose names (studies:run, ...) predate the research app holding them.
    path("", include((studies_urls.urlpatterns + run_urls.urlpatterns, studies_urls.app_name))),
]
