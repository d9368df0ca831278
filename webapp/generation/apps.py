from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "webapp.generation"
    label = "generation"
    verbose_name = "Generation"
