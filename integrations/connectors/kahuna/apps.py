from django.apps import AppConfig


class KahunaApp(AppConfig):
    name = "integrations.connectors.kahuna"
    label = "kahuna"
    verbose_name = "Kahuna"
