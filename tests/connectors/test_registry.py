"""The one registry and what each connector class says about itself (credentials, hosts, target)."""

import pytest

from integrations.connectors.base import MASK, Batch, OutRow, SegmentInfo
from integrations.connectors.registry import (
    CONNECTORS,
    all_credentials,
    connector_class,
    credentials,
    kind_choices,
    provider_choices,
)
from integrations.models import Authorization

SEGMENT = SegmentInfo(7, "Trial users", "42")
MAPPING = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"}
MINIMAL_CONFIG = {
    "list_api": {"base_url": "https://partner.example"},
    "traits_api": {"url": "https://partner.example/identify"},
    "cohort_webhook": {"url": "https://partner.example/hook"},
    "clevertap": {},
    "kahuna": {},
    "kochava": {"mapping": MAPPING, "event_types": ["Purchase"]},
}


@pytest.mark.parametrize("kind", list(CONNECTORS))
def test_each_connector_describes_its_credentials_hosts_and_target(kind):
    cls = connector_class(kind)
    assert cls.kind == kind
    names = [field.name for field in cls.credential_fields]
    assert names and len(names) == len(set(names))
    assert all(header == header.lower() for header in cls.secret_headers)
    config_fields = cls.Config().fields
    assert cls.host_fields and set(cls.host_fields) <= set(config_fields), cls.host_fields
    assert all(host.url.startswith("https://") and host.label for host in cls.hosts.values())
    defaults = cls.validate_config(MINIMAL_CONFIG[kind])
    assert "Trial users" in cls.describe_target(defaults, SEGMENT)


def test_one_list_of_providers_the_amplitude_source_and_every_destination_kind():
    providers = dict(provider_choices())
    assert set(providers) == {"amplitude", *dict(kind_choices())}
    assert set(all_credentials()) == set(providers)
    assert credentials("amplitude").secret_fields == ("api_key", "secret_key")
    assert credentials("kochava").required is False  # Kochava's key and secret are opt-in
    # CleverTap's region is asked once, as the destination's choice, not typed into the authorization.
    assert credentials("clevertap").plain_fields == ("account_id",)
    with pytest.raises(KeyError):
        credentials("nope")


def test_fixed_hosts_are_data_clevertap_regions_come_from_them():
    clevertap = connector_class("clevertap")
    assert clevertap.hosts["us1"].url == "https://us1.api.clevertap.com"
    assert (
        connector_class("kahuna").Config().fields["base_url"].default
        == connector_class("kahuna").hosts["tap-nexus"].url
    )


def _sample(kind: str, config: dict, secrets: dict, auth_fields: dict | None = None) -> dict:
    cls = connector_class(kind)
    connector = cls(cls.validate_config(config), secrets, auth_fields=auth_fields, segment=SEGMENT)
    return connector.sample_request(Batch("add", [OutRow(1, 1, "add", "u1", "d1")]))["headers"]


def test_a_credential_header_named_by_the_destination_is_masked_in_the_dry_run():
    # Header names no keyword gives away: only the connector knows they carry a credential.
    webhook = _sample(
        "cohort_webhook",
        {"url": "https://hooks.example/in"},
        {"header_value": "s3cret-value"},
        {"header_name": "X-Sig"},
    )
    assert webhook["X-Sig"] == MASK
    kochava = _sample(
        "kochava",
        {
            "app_guid": "koapp",
            "api_key_header": "X-Kv-Id",
            "mapping": MAPPING,
            "event_types": ["Purchase"],
        },
        {"api_key": "kv-key-123"},
    )
    assert kochava["X-Kv-Id"] == MASK
    listed = _sample(
        "list_api",
        {"base_url": "https://l.example", "auth_mode": "header", "auth_header": "X-Partner"},
        {"api_key": "k1"},
    )
    assert listed["X-Partner"] == MASK


@pytest.mark.django_db
def test_an_authorization_accepts_only_its_providers_secrets(acme):
    auth = Authorization(workspace=acme, provider="clevertap", label="ct")
    auth.set_secrets({"passcode": "pc-1"})
    assert auth.masked_secrets() == {"passcode": MASK}
    with pytest.raises(Exception, match="CleverTap has no secret field 'api_key'"):
        auth.set_secrets({"api_key": "x"})
