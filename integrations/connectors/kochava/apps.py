from django.apps import AppConfig


class KochavaApp(AppConfig):
    name = "integrations.connectors.kochava"
    label = "kochava"
    verbose_name = "Kochava"
