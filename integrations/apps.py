from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # Registered on import: the settings checks, and the API key revocation that follows its owner.
        from config import checks  # noqa: F401
        from integrations import key_owner  # noqa: F401
