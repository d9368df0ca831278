from django.apps import AppConfig


class ResearchConfig(AppConfig):
    name = "webapp.research"
    label = "research"
    verbose_name = "Research"
