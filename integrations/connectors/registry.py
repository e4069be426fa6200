"""The one registry of partners: destination kind -> its label, the partner's name and its connector.

Everything else about a partner is described by its connector class (integrations.connectors.base.
Connector): its config, its credentials (`credential_fields`, `secret_headers`), its fixed hosts,
what a sync sends (`describe_target`). The console, the management API and the admin read those,
so none of them names a partner.

An authorization's provider is the kind of destination it serves, or "amplitude" for the source.
Model choices are callables over this dict (adding a kind needs no migration) and the classes are
imported only when used, so a broken vendor module cannot stop the app from starting.
Adding a partner = one module with one small class + one entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from django.utils.module_loading import import_string

from integrations.credentials import Credentials

if TYPE_CHECKING:
    from integrations.connectors.base import Connector


class Kind(NamedTuple):
    label: str  # the destination kind, as the console and the API list it
    partner: str  # the partner's own name: how its authorizations are labelled
    path: str  # dotted path of the connector class


CONNECTORS: dict[str, Kind] = {
    "list_api": Kind(
        "List API (Amplitude list-based cohort sync)",
        "List API (Amplitude cohort contract)",
        "integrations.connectors.list_api.ListApiConnector",
    ),
    "traits_api": Kind(
        "Traits API (identify with a cohort trait)",
        "Traits API (identify)",
        "integrations.connectors.traits_api.TraitsApiConnector",
    ),
    "cohort_webhook": Kind(
        "Cohort webhook", "Cohort webhook", "integrations.connectors.cohort_webhook.CohortWebhookConnector"
    ),
    "clevertap": Kind(
        "CleverTap (profile upload + Partner Sync event)",
        "CleverTap",
        "integrations.connectors.clevertap.CleverTapConnector",
    ),
    "kahuna": Kind(
        "Kahuna (user attributes, credential sync)", "Kahuna", "integrations.connectors.kahuna.KahunaConnector"
    ),
    "kochava": Kind(
        "Kochava Post Install (IdentityLink, event streaming)",
        "Kochava",
        "integrations.connectors.kochava.KochavaConnector",
    ),
}

# The one provider of credentials that is not a destination kind: the Amplitude source.
AMPLITUDE = "amplitude"
_AMPLITUDE_FIELDS = "integrations.sources.amplitude.CREDENTIAL_FIELDS"


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, spec.label) for kind, spec in CONNECTORS.items()]


def provider_choices() -> list[tuple[str, str]]:
    return [(AMPLITUDE, "Amplitude"), *((kind, spec.partner) for kind, spec in CONNECTORS.items())]


def connector_class(kind: str) -> type[Connector]:
    try:
        return import_string(CONNECTORS[kind].path)
    except KeyError:
        raise ValueError(f"unknown destination kind {kind!r}; choose from {sorted(CONNECTORS)}") from None


def credentials(provider: str) -> Credentials:
    """What an authorization of `provider` holds (KeyError for an unknown provider)."""
    if provider == AMPLITUDE:
        return Credentials("Amplitude", import_string(_AMPLITUDE_FIELDS))
    return Credentials(CONNECTORS[provider].partner, connector_class(provider).credential_fields)


def all_credentials() -> dict[str, Credentials]:
    return {provider: credentials(provider) for provider, _ in provider_choices()}
