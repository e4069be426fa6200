import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.models import ApiKey
from tests.conftest import key_client


def test_key_is_stored_only_as_prefix_and_sha512(acme):
    key, raw = ApiKey.issue(acme, scope="management", name="ci")
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw.startswith("ccm_") and raw.startswith(stored.prefix)
    assert stored.key_hash == hashlib.sha512(raw.encode()).hexdigest()
    assert raw not in {str(value) for value in stored.__dict__.values()}


@pytest.mark.parametrize("scheme", ["Bearer", "Api-Key"])
def test_management_key_authenticates_with_either_scheme(acme, acme_management_key, scheme):
    response = key_client(acme_management_key, scheme).get("/api/v1/workspace/current/")
    assert response.status_code == 200
    assert response.json()["slug"] == "acme"


def test_use_is_recorded_in_last_used_at(acme, acme_management_key):
    key_client(acme_management_key).get("/api/v1/workspace/current/")
    assert ApiKey.objects.get(workspace=acme).last_used_at is not None


def test_unknown_key_gets_401_json(db):
    response = key_client("ccm_not-a-real-key-at-all-000000000").get("/api/v1/workspace/current/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_revoked_key_gets_401_json(acme, acme_management_key):
    ApiKey.objects.get(workspace=acme).revoke()
    response = key_client(acme_management_key).get("/api/v1/workspace/current/")
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "revoked_api_key", "message": "This API key has been revoked."}


def test_inbound_key_on_management_api_gets_403_naming_the_scope(acme, acme_inbound_key):
    response = key_client(acme_inbound_key).get("/api/v1/authorizations/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert "'management'" in response.json()["error"]["message"]


def test_outsider_key_sees_nothing_of_acme(acme_clevertap, globex_management_key):
    client = key_client(globex_management_key)
    assert client.get("/api/v1/authorizations/").json()["results"] == []
    response = client.get(f"/api/v1/authorizations/{acme_clevertap.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_create_via_api_shows_key_once_then_only_prefix(acme, acme_management_key):
    client = key_client(acme_management_key)
    created = client.post("/api/v1/api-keys/", {"name": "amplitude", "scope": "inbound"}, format="json")
    assert created.status_code == 201
    raw = created.json()["key"]
    assert raw.startswith("cci_")
    listed = client.get(f"/api/v1/api-keys/{created.json()['id']}/").json()
    assert "key" not in listed and listed["prefix"] == raw[:12]


def test_revoke_via_api(acme, acme_management_key):
    client = key_client(acme_management_key)
    key, raw = ApiKey.issue(acme, scope="management", name="old")
    assert client.post(f"/api/v1/api-keys/{key.pk}/revoke/").json()["revoked_at"]
    assert key_client(raw).get("/api/v1/workspace/current/").status_code == 401


def test_create_api_key_command_prints_the_key_alone_on_stdout(acme):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", workspace="acme", scope="inbound", name="amp", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cci_")
    assert ApiKey.objects.get(prefix=lines[0][:12]).name == "amp"


def test_create_api_key_command_rejects_unknown_workspace(db):
    with pytest.raises(CommandError, match="No workspace with slug 'nope'"):
        call_command("create_api_key", workspace="nope", scope="inbound")
