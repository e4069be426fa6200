"""System checks on the settings (`manage.py check`, `migrate` and `runserver` print them)."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def development_keys(app_configs=None, **kwargs) -> list[Warning]:
    """DEBUG=1 may run on the public development keys, but never silently: say so on every start."""
    used = getattr(settings, "USES_DEVELOPMENT_KEYS", [])
    if not used:
        return []
    return [
        Warning(
            f"{' and '.join(used)} hold the public development value (DEBUG=1 fallback).",
            hint="Fine on a developer's machine; anything reachable by others needs real keys and DEBUG off.",
            id="config.W001",
        )
    ]
