"""The credential kinds an Authorization can hold: which fields are plain and which are secret.

Connectors and sources declare their provider by key; model choices are derived from this dict so
the two cannot drift.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Provider:
    label: str
    secret_fields: tuple[str, ...]
    plain_fields: tuple[str, ...] = ()
    help: dict[str, str] = field(default_factory=dict)


PROVIDERS: dict[str, Provider] = {
    "amplitude": Provider("Amplitude", secret_fields=("api_key", "secret_key")),
    "clevertap": Provider(
        "CleverTap",
        secret_fields=("passcode",),
        plain_fields=("account_id", "region"),
        help={"region": "Blank = Europe (api.clevertap.com); in1, aps3, mec1, sg1, sk1, us1."},
    ),
    "kahuna": Provider("Kahuna", secret_fields=("secret_key", "api_key")),
    "kochava": Provider(
        "Kochava",
        secret_fields=("api_key", "api_secret"),
        plain_fields=("app_guid",),
        help={"api_key": "Optional (Enable Authentication).", "api_secret": "Optional, from Kochava CS."},
    ),
    "list_api": Provider("List API (Amplitude cohort contract)", secret_fields=("api_key",)),
    "traits_api": Provider("Traits API (identify)", secret_fields=("api_key",)),
    "cohort_webhook": Provider("Cohort webhook", secret_fields=("header_value",), plain_fields=("header_name",)),
}

PROVIDER_CHOICES = [(key, provider.label) for key, provider in PROVIDERS.items()]
