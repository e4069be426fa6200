"""The one list of destination kinds: kind -> label and the dotted path of its connector class.

Model choices are derived from this dict (a callable, so adding a kind needs no migration) and the
classes are imported only when used, so a broken vendor module cannot stop the app from starting.
Adding a partner = one module with one small class + one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from integrations.connectors.base import Connector


class Kind(NamedTuple):
    label: str
    path: str


CONNECTORS: dict[str, Kind] = {
    "list_api": Kind(
        "List API (Amplitude list-based cohort sync)", "integrations.connectors.list_api.ListApiConnector"
    ),
    "traits_api": Kind(
        "Traits API (identify with a cohort trait)", "integrations.connectors.traits_api.TraitsApiConnector"
    ),
    "cohort_webhook": Kind("Cohort webhook", "integrations.connectors.cohort_webhook.CohortWebhookConnector"),
    "clevertap": Kind(
        "CleverTap (profile upload + Partner Sync event)", "integrations.connectors.clevertap.CleverTapConnector"
    ),
    "kahuna": Kind("Kahuna (user attributes, credential sync)", "integrations.connectors.kahuna.KahunaConnector"),
    "kochava": Kind(
        "Kochava Post Install (IdentityLink, event streaming)", "integrations.connectors.kochava.KochavaConnector"
    ),
}


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, spec.label) for kind, spec in CONNECTORS.items()]


def connector_class(kind: str) -> type[Connector]:
    try:
        return import_string(CONNECTORS[kind].path)
    except KeyError:
        raise ValueError(f"unknown destination kind {kind!r}; choose from {sorted(CONNECTORS)}") from None
