"""The inbound request log keeps no credential a sender put in a header, whatever its name."""

import pytest

from integrations.inbound.models import InboundRequest
from tests.inbound.conftest import push

SECRETS = {
    "HTTP_X_WRITE_KEY": "wk-live-0123456789abcdef",
    "HTTP_X_AUTH_TOKEN": "tok-0123456789abcdef",
    "HTTP_X_WEBHOOK_PASSWORD": "hunter2-but-longer",
    "HTTP_X_SIGNATURE": "sha256=deadbeefcafe",
    "HTTP_X_CLIENT_SECRET": "cs-0123456789",
    "HTTP_X_SEGMENT_SESSION": "sess-0123456789",
}


def _logged(acme_inbound_key, **headers) -> InboundRequest:
    push("/api/amplitude/lists", {"name": "no cohort id here"}, acme_inbound_key, **headers)
    return InboundRequest.objects.filter(api_key__isnull=False).latest("id")


def test_custom_auth_headers_are_not_kept(acme, acme_inbound_key):
    entry = _logged(acme_inbound_key, HTTP_X_REQUEST_SOURCE="amplitude", **SECRETS)
    logged = str(entry.headers)
    for value in SECRETS.values():
        assert value not in logged
    assert entry.headers.get("X-Request-Source") == "amplitude", "ordinary headers are still kept"
    assert acme_inbound_key not in logged


def test_a_key_in_an_innocent_looking_header_is_scrubbed(acme, acme_inbound_key):
    entry = _logged(acme_inbound_key, HTTP_X_FORWARDED_CLIENT=f"Bearer {acme_inbound_key}")
    assert acme_inbound_key not in str(entry.headers) and "X-Forwarded-Client" in entry.headers


@pytest.mark.parametrize("name", ["X-Partner-Thing", "x-partner-thing"])
def test_operators_can_name_more_headers(acme, acme_inbound_key, settings, name):
    settings.INBOUND_LOG_REDACT_HEADERS = [name]
    entry = _logged(acme_inbound_key, HTTP_X_PARTNER_THING="opaque-credential")
    assert "opaque-credential" not in str(entry.headers)
