"""The one registry of partners: destination kind -> its label, the partner's name and its connector.

Everything else about a partner is described by its connector class (integrations.connectors.base.
Connector): its config, its credentials (`credential_fields`, `secret_headers`), its fixed hosts,
what a sync sends (`describe_target`). The console, the management API and the admin read those,
so none of them names a partner.

A partner with more than a connector (Kahuna's exports, Kochava's event stream) is a package next to
this file, `integrations/connectors/<kind>/`, and a Django app (label <kind>): the connector in
`connector.py`, and as it needs them `models.py`, `admin.py`, `templates/<kind>/` and
- `tasks.py` with `dispatch_due(now)`: joins the scheduler tick (config.scheduler);
- `urls.py` with `urlpatterns`: console pages, joined to the console's URLs (namespace "console");
- `views.py` with `destination_section(destination)`: what its destination page adds (a dict naming
  its "partner_template"), and optionally `SEGMENT_ACTIONS`: buttons on a segment page, and
  `campaigns_section(workspace)`: what it adds to the Campaigns page;
- `api.py` with `ROUTES`: (prefix, viewset, basename) registered under /api/v1/;
- `erasure.py` with `LOG_COLUMNS`, `KEYED_BY_ID` and `SENT_SQL`: the partner's tables that erasing a
  person must scrub, and how to tell whether a person was sent there (audiences.erasure);
- `metrics.py` with `RUN_KINDS`: its runs for /metrics (config.metrics).
The functions below hand these to the settings, Celery, the scheduler, the console and the API, so
none of those names a partner.

An authorization's provider is the kind of destination it serves, or "amplitude" for the source.
Model choices are callables over this dict (adding a kind needs no migration) and the classes are
imported only when used, so a broken vendor module cannot stop the app from starting.
Adding a partner = one module with one small class (or one package) + one entry here.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from django.utils.module_loading import import_string

from integrations.credentials import Credentials

if TYPE_CHECKING:
    from integrations.connectors.base import Connector


class Kind(NamedTuple):
    label: str  # the destination kind, as the console and the API list it
    partner: str  # the partner's own name: how its authorizations are labelled
    path: str  # dotted path of the connector class
    app: str = ""  # the partner's own Django app (a package next to this file), when it has one


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
        "Kahuna (user attributes, credential sync)",
        "Kahuna",
        "integrations.connectors.kahuna.connector.KahunaConnector",
        app="integrations.connectors.kahuna",
    ),
    "kochava": Kind(
        "Kochava Post Install (IdentityLink, event streaming)",
        "Kochava",
        "integrations.connectors.kochava.connector.KochavaConnector",
        app="integrations.connectors.kochava",
    ),
}

# For INSTALLED_APPS and Celery's task discovery (plain names: read before the apps load).
PARTNER_APPS: tuple[str, ...] = tuple(kind.app for kind in CONNECTORS.values() if kind.app)
# For the scheduler tick: each partner app's dispatcher, named, not imported.
PARTNER_DISPATCHERS: tuple[str, ...] = tuple(f"{app}.tasks.dispatch_due" for app in PARTNER_APPS)
# For beat's lost-run check: the partner apps whose runs carry heartbeats (a `mark_lost_runs(now)`).
PARTNER_LOST_RUN_CHECKS: tuple[str, ...] = ("integrations.connectors.kochava.tasks.mark_lost_runs",)

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


# ---- the partner apps' parts, for the wiring that joins them in -----------------------------------


def _partner_modules(name: str) -> list[ModuleType]:
    return [import_module(f"{app}.{name}") for app in PARTNER_APPS if find_spec(f"{app}.{name}")]


def console_urlpatterns() -> list:
    """The partners' console pages (console/urls.py adds them to its own)."""
    return [pattern for module in _partner_modules("urls") for pattern in module.urlpatterns]


def api_routes() -> list[tuple[str, Any, str]]:
    """The partners' management API resources: (prefix, viewset, basename)."""
    return [route for module in _partner_modules("api") for route in module.ROUTES]


def destination_section(destination: Any) -> dict:
    """What a destination's page adds for its partner ({} for a kind without an app of its own)."""
    app = CONNECTORS[destination.kind].app
    return import_module(f"{app}.views").destination_section(destination) if app else {}


def segment_actions() -> list[tuple[str, str]]:
    """Buttons the partners add to a segment page: (label, URL name taking the segment's pk)."""
    return [action for module in _partner_modules("views") for action in getattr(module, "SEGMENT_ACTIONS", ())]


def partner_declarations(module: str, name: str) -> list:
    """What the partner apps' `module`.py declare under `name`, concatenated in registry order
    (erasure: LOG_COLUMNS, KEYED_BY_ID, SENT_SQL; metrics: RUN_KINDS)."""
    return [item for found in _partner_modules(module) for item in getattr(found, name, ())]


def campaign_sections(workspace: Any) -> list[dict]:
    """What the partners add to the Campaigns page: one dict per partner with a `campaigns_section`
    (each names its "partner_template"), such as Kahuna's adaptive campaigns and their exports."""
    return [
        module.campaigns_section(workspace)
        for module in _partner_modules("views")
        if hasattr(module, "campaigns_section")
    ]
