import pytest
from django.core.management import call_command
from django.test import override_settings

from integrations.crypto import UndecryptableSecret, encrypt_json
from integrations.models import Authorization
from tests.conftest import key_client

OLD_KEY = "b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleTE="
NEW_KEY = "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleTI="


def test_secrets_are_encrypted_at_rest_and_round_trip(acme_clevertap):
    row = Authorization.objects.get(pk=acme_clevertap.pk)
    assert "acme-passcode-s3cret" not in row.secrets_ciphertext
    assert row.secrets == {"passcode": "acme-passcode-s3cret"}


def test_blank_secret_keeps_the_saved_one(acme_clevertap):
    acme_clevertap.set_secrets({"passcode": ""})
    assert acme_clevertap.secrets == {"passcode": "acme-passcode-s3cret"}


def test_rotation_re_encrypts_every_row_under_the_newest_key(acme):
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        auth = Authorization(workspace=acme, provider="amplitude", label="Amp")
        auth.set_secrets({"api_key": "k", "secret_key": "s"})
        auth.save()
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        call_command("rotate_encryption_keys")
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):  # the old key is gone now
        assert Authorization.objects.get(pk=auth.pk).secrets == {"api_key": "k", "secret_key": "s"}


def test_rotation_refuses_when_a_row_cannot_be_decrypted(acme):
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        Authorization.objects.create(
            workspace=acme, provider="amplitude", label="Amp", secrets_ciphertext=encrypt_json({"api_key": "x"})
        )
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]), pytest.raises(Exception, match="cannot be decrypted"):
        call_command("rotate_encryption_keys")
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]), pytest.raises(UndecryptableSecret):
        _ = Authorization.objects.get(label="Amp").secrets


def test_api_masks_secrets_and_never_returns_them(acme, acme_management_key):
    client = key_client(acme_management_key)
    created = client.post(
        "/api/v1/authorizations/",
        {
            "provider": "amplitude",
            "label": "Prod project",
            "secrets": {"api_key": "AMP-KEY-123", "secret_key": "AMP-SECRET-456"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    for response in (
        created,
        client.get("/api/v1/authorizations/"),
        client.get(f"/api/v1/authorizations/{created.json()['id']}/"),
    ):
        assert b"AMP-KEY-123" not in response.content and b"AMP-SECRET-456" not in response.content
    assert created.json()["masked_secrets"] == {"api_key": "••••••••", "secret_key": "••••••••"}
    assert Authorization.objects.get(label="Prod project").secrets["secret_key"] == "AMP-SECRET-456"


def test_api_rejects_unknown_secret_with_field_error(acme, acme_management_key):
    response = key_client(acme_management_key).post(
        "/api/v1/authorizations/", {"provider": "amplitude", "label": "x", "secrets": {"password": "p"}}, format="json"
    )
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid" and "secrets" in body["fields"]


def test_marketer_session_cannot_read_credentials_via_api(api, bob, acme_clevertap):
    api.force_login(bob)
    response = api.get("/api/v1/authorizations/")
    assert response.status_code == 403
    assert "owners and ops" in response.json()["error"]["message"]


def test_owner_session_reads_masked_credentials_via_api(api, alice, acme_clevertap):
    api.force_login(alice)
    response = api.get("/api/v1/authorizations/")
    assert response.status_code == 200
    assert response.json()["results"][0]["masked_secrets"] == {"passcode": "••••••••"}
    assert b"acme-passcode-s3cret" not in response.content


def test_outsider_session_sees_no_acme_rows(api, charlie, acme_clevertap):
    api.force_login(charlie)
    assert api.get("/api/v1/authorizations/").json()["results"] == []
    assert api.get(f"/api/v1/authorizations/{acme_clevertap.pk}/").status_code == 404
    # Naming a workspace one is not a member of gives no access to it either.
    assert api.get("/api/v1/authorizations/", HTTP_X_WORKSPACE="acme").status_code == 403


def test_repr_hides_ciphertext(acme_clevertap):
    assert "gAAAA" not in repr(acme_clevertap)
