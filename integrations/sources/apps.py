from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "integrations.sources"
    label = "sources"
    verbose_name = "Sources (pulls from Amplitude)"
