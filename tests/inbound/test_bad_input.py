"""Every refused request gets a 4xx JSON error naming the problem, and nothing of it is applied."""

import base64
import gzip

import pytest

from integrations.inbound.models import InboundBatch, InboundRequest
from integrations.models import ApiKey
from tests.inbound.conftest import fixture, push


def error_of(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


@pytest.mark.parametrize("auth", ["basic", "header", "bearer"])
def test_the_key_is_accepted_in_each_documented_place(acme, acme_inbound_key, auth):
    response = push(
        "/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key, auth=auth
    )
    assert response.status_code == 200


def test_a_bad_key_is_401(acme):
    response = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), "cci_not-a-real-key")
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"


def test_no_key_is_401(acme):
    response = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), None)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")


def test_a_revoked_key_is_401(acme):
    key, raw = ApiKey.issue(acme, scope="inbound", name="old")
    key.revoke()
    response = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), raw)
    assert response.status_code == 401 and error_of(response)["code"] == "revoked_api_key"


def test_a_management_key_is_403_naming_the_scope(acme, acme_management_key):
    response = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_management_key)
    assert response.status_code == 403 and "'inbound'" in error_of(response)["message"]


def test_another_workspaces_list_is_404(acme, globex, acme_inbound_key, list_id):
    _, globex_key = ApiKey.issue(globex, scope="inbound", name="globex amplitude")
    response = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["x"]}, globex_key)
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_list"
    assert not InboundBatch.objects.exists()


def test_an_unknown_list_is_404(acme, acme_inbound_key):
    response = push("/api/amplitude/lists/999999/add", {"userIds": ["x"]}, acme_inbound_key)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "names"),
    [
        (b'{"userIds": ["a",', "application/json", 400, "malformed_json", "JSON"),
        (b'["a"]', "application/json", 400, "malformed_json", "object"),
        (b'{"userIds": ["a"]}', "application/x-www-form-urlencoded", 415, "unsupported_content_type", "Content-Type"),
        (b'{"context": {}}', "application/json", 400, "invalid", "userIds"),
        (b'{"userIds": "a,b"}', "application/json", 400, "invalid", "userIds"),
        (b'{"userIds": ["a", {"id": 1}, true]}', "application/json", 400, "invalid", "userIds[1]"),
    ],
)
def test_malformed_requests(acme, acme_inbound_key, list_id, body, content_type, status, code, names):
    response = push(f"/api/amplitude/lists/{list_id}/add", body, acme_inbound_key, content_type=content_type)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code and names in (error["message"] + str(error.get("fields", "")))
    assert not InboundBatch.objects.exists()


def test_more_ids_than_the_limit_is_413_naming_it(acme, acme_inbound_key, list_id, settings):
    settings.INBOUND_MAX_IDS_PER_REQUEST = 100
    response = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": list(range(101))}, acme_inbound_key)
    assert response.status_code == 413 and "limit is 100" in error_of(response)["message"]
    assert not InboundBatch.objects.exists()


def test_a_body_over_the_limit_is_413(acme, acme_inbound_key, list_id, settings):
    settings.INBOUND_MAX_BODY_BYTES = 1000
    response = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["x" * 50] * 100}, acme_inbound_key)
    assert response.status_code == 413 and error_of(response)["code"] == "body_too_large"


def test_a_gzip_bomb_is_refused_without_inflating_it(acme, acme_inbound_key, list_id, settings):
    settings.INBOUND_MAX_DECOMPRESSED_BYTES = 1_000_000
    bomb = gzip.compress(b'{"userIds": ["' + b"a" * 50_000_000 + b'"]}')
    assert len(bomb) < settings.INBOUND_MAX_BODY_BYTES
    response = push(f"/api/amplitude/lists/{list_id}/add", bomb, acme_inbound_key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413 and "decompressed" in error_of(response)["message"]


def test_a_broken_gzip_body_is_400(acme, acme_inbound_key, list_id):
    response = push(
        f"/api/amplitude/lists/{list_id}/add", b"\x1f\x8bnot gzip", acme_inbound_key, HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_gzip"


def test_a_bad_list_name_is_400(acme, acme_inbound_key):
    response = push("/api/amplitude/lists", {"name": "no cohort id here"}, acme_inbound_key)
    assert response.status_code == 400 and "name" in error_of(response)["fields"]


def test_overload_is_429_with_retry_after(acme, acme_inbound_key, list_id, settings):
    settings.INBOUND_BACKLOG_LIMIT = 2
    for n in range(3):
        assert push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [f"u{n}"]}, acme_inbound_key).status_code == 200
    response = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["late"]}, acme_inbound_key)
    assert response.status_code == 429 and response["Retry-After"] == str(settings.INBOUND_RETRY_AFTER_SECONDS)
    assert InboundBatch.objects.count() == 3


def test_the_inbound_log_keeps_refusals_with_reasons_but_never_the_secret(acme, acme_inbound_key, list_id, settings):
    settings.INBOUND_LOG_SIZE = 5
    for _ in range(7):
        push(f"/api/amplitude/lists/{list_id}/add", b"{oops", acme_inbound_key)
    entries = InboundRequest.objects.filter(api_key__isnull=False).order_by("id")
    assert entries.count() == 5
    entry = entries.last()
    assert entry.status_code == 400 and entry.error_code == "malformed_json" and entry.duration_ms >= 0
    assert entry.body_preview == "{oops"
    assert "Authorization" not in entry.headers and acme_inbound_key not in str(entry.headers)
    basic = base64.b64encode(f"{acme_inbound_key}:".encode()).decode()
    assert basic not in str(entry.headers)


def test_rejected_unknown_keys_are_logged_without_the_key(acme):
    push("/api/amplitude/lists", {"name": "x:1"}, "cci_abcdefghXXXXXXXXXXXXXXXXXXXXXX")
    entry = InboundRequest.objects.get()
    assert entry.status_code == 401 and entry.key_prefix == "cci_abcdefgh" and entry.api_key is None
