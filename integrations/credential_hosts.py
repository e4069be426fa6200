"""Credentials follow the host they were entered for.

Secrets are write-only, but whoever may edit a destination or an Amplitude project could otherwise
point it at a host of their own and have its saved credentials sent there (Test connection, the next
sync). So, in the console, the management API and the admin alike:

- changing where a destination or project sends its credentials (a URL, a host, a region) while it
  keeps its saved authorization is refused: enter the credentials again (a new authorization), or
  save it without one;
- an authorization already used by another destination or project that sends it elsewhere cannot
  be attached: it was entered for that other host.

An authorization nobody uses yet may be attached to any destination of its provider: whoever could
attach it was the one who just entered it (or could have).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from integrations.connectors.registry import connector_class

if TYPE_CHECKING:
    from integrations.delivery.models import Destination
    from integrations.models import Authorization
    from integrations.sources.models import AmplitudeProject

HOST_CHANGED = (
    "Where this {what} sends its credentials changed ({fields}): enter the credentials again. "
    "Saved credentials are only ever sent to the host they were entered for."
)
USED_ELSEWHERE = (
    "The authorization “{label}” is used by “{other}”, which sends it to another host: "
    "enter the credentials for this one instead."
)


def _destination_hosts(kind: str, config: dict) -> dict[str, str]:
    return connector_class(kind).host_values(config or {})


def destination_problem(
    instance: Destination | None, kind: str, config: dict, authorization: Authorization | None
) -> str:
    """Why this save would send saved credentials to a new host, or "" when it would not."""
    if authorization is None:
        return ""
    hosts = _destination_hosts(kind, config)
    saved = type(instance).objects.filter(pk=instance.pk).first() if instance is not None and instance.pk else None
    if saved is not None and saved.authorization_id == authorization.pk:
        before = _destination_hosts(saved.kind, saved.config)
        changed = [name for name in hosts if hosts[name] != before.get(name, "")]
        if changed:
            return HOST_CHANGED.format(what="destination", fields=", ".join(changed))
    others = authorization.destinations.exclude(pk=instance.pk if instance is not None and instance.pk else None)
    for other in others.order_by("pk"):
        if _destination_hosts(other.kind, other.config) != hosts:
            return USED_ELSEWHERE.format(label=authorization.label, other=other.name)
    return ""


def project_problem(instance: AmplitudeProject | None, api_base_url: str, authorization: Authorization | None) -> str:
    """The same rule for an Amplitude project, whose host is its region's or its base URL override."""
    if authorization is None:
        return ""
    host = api_base_url.rstrip("/").lower()
    saved = type(instance).objects.filter(pk=instance.pk).first() if instance is not None and instance.pk else None
    if (
        saved is not None
        and saved.authorization_id == authorization.pk
        and saved.api_base_url.rstrip("/").lower() != host
    ):
        return HOST_CHANGED.format(what="project", fields="region or base URL")
    others = authorization.amplitude_projects.exclude(pk=instance.pk if instance is not None and instance.pk else None)
    for other in others.order_by("pk"):
        if other.api_base_url.rstrip("/").lower() != host:
            return USED_ELSEWHERE.format(label=authorization.label, other=other.label)
    return ""
