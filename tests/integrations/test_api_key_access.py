"""Management keys: an access level (read / write / admin, each one role's rights), an optional
expiry, and a life no longer than their owner's right to hold them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audiences.models import Segment
from integrations.key_owner import DEACTIVATED, DEMOTED, LEFT
from integrations.models import ApiKey
from tests.conftest import key_client
from workspaces.models import Membership, Role


@pytest.fixture
def segment(acme):
    return Segment.objects.create(workspace=acme, name="Fans", type="cohort", external_id="c1")


def _key(acme, access: str, owner=None, **extra) -> str:
    return ApiKey.issue(acme, scope="management", name=access, access=access, created_by=owner, **extra)[1]


def _calls(client, segment) -> dict:
    """One read, one marketer action (a sync job) and one credential action (an authorization)."""
    from integrations.delivery.models import Destination

    destination = Destination.objects.get_or_create(workspace=segment.workspace, kind="list_api", name="L", config={})[
        0
    ]
    return {
        "read": client.get("/api/v1/segments/").status_code,
        "write": client.post(
            "/api/v1/sync-jobs/",
            {"segment": segment.pk, "destination": destination.pk, "cadence": "one_time"},
            format="json",
        ).status_code,
        "admin": client.post(
            "/api/v1/authorizations/",
            {
                "provider": "cohort_webhook",
                "label": f"hook {timezone.now().timestamp()}",
                "fields": {"header_name": "X-A"},
            },
            format="json",
        ).status_code,
    }


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ("read", {"read": 200, "write": 403, "admin": 403}),
        ("write", {"read": 200, "write": 201, "admin": 403}),
        ("admin", {"read": 200, "write": 201, "admin": 201}),
    ],
)
def test_each_access_level_does_what_its_role_may(acme, segment, access, expected):
    assert _calls(key_client(_key(acme, access)), segment) == expected


def test_a_key_says_its_access(acme):
    body = key_client(_key(acme, "write")).get("/api/v1/workspace/current/").json()
    assert body["role"] == Role.MARKETER and body["access"] == "write"


def test_created_keys_read_unless_told_otherwise(acme, alice):
    client = key_client(_key(acme, "admin", owner=alice))
    created = client.post("/api/v1/api-keys/", {"name": "ci", "scope": "management"}, format="json").json()
    assert created["access"] == "read"
    assert key_client(created["key"]).post("/api/v1/authorizations/", {}, format="json").status_code == 403


def test_an_expired_key_is_401_saying_so(acme):
    raw = _key(acme, "admin")
    ApiKey.objects.filter(prefix=raw[:12]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = key_client(raw).get("/api/v1/segments/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "expired_api_key"


def test_a_key_works_until_it_expires(acme):
    raw = _key(acme, "read", expires_at=timezone.now() + timedelta(hours=1))
    assert key_client(raw).get("/api/v1/segments/").status_code == 200


def test_an_expired_inbound_key_is_401_too(acme):
    from tests.inbound.conftest import push

    raw = ApiKey.issue(acme, scope="inbound", name="amp", expires_at=timezone.now() - timedelta(minutes=1))[1]
    response = push("/api/amplitude/lists", {"name": "x: 1"}, raw)
    assert response.status_code == 401 and response.json()["error"]["code"] == "expired_api_key"


def test_an_expiry_in_the_past_is_refused_at_creation(acme, acme_management_key):
    response = key_client(acme_management_key).post(
        "/api/v1/api-keys/",
        {"name": "old", "scope": "management", "expires_at": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400 and "expires_at" in response.json()["error"]["fields"]


def test_the_console_creates_a_key_with_access_and_expiry(client, alice, acme):
    client.force_login(alice)
    when = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    client.post(
        "/settings/api-keys/",
        {"name": "nightly", "scope": "management", "access": "write", "expires_at": when, "identity_kind": "user_id"},
    )
    key = ApiKey.objects.get(name="nightly")
    assert key.access == "write" and key.expires_at is not None and key.created_by == alice
    page = client.get("/settings/api-keys/").content.decode()
    assert "management · write" in page and "until" in page


# --- revoked with their owner --------------------------------------------------------------------


def _owned(acme, alice) -> tuple[ApiKey, str]:
    key, raw = ApiKey.issue(acme, scope="management", name="alice's", access="admin", created_by=alice)
    assert key_client(raw).get("/api/v1/segments/").status_code == 200
    return key, raw


def _refused(raw: str, reason: str, key: ApiKey) -> None:
    response = key_client(raw).get("/api/v1/segments/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "revoked_api_key"
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_reason == reason


def test_deactivating_the_owner_revokes_the_key(acme, alice):
    key, raw = _owned(acme, alice)
    alice.is_active = False
    alice.save()
    _refused(raw, DEACTIVATED, key)


def test_losing_the_role_revokes_the_key(acme, alice):
    key, raw = _owned(acme, alice)
    membership = Membership.objects.get(user=alice, workspace=acme)
    membership.role = Role.MARKETER
    membership.save()
    _refused(raw, DEMOTED, key)


def test_leaving_the_workspace_revokes_the_key(acme, alice):
    key, raw = _owned(acme, alice)
    Membership.objects.get(user=alice, workspace=acme).delete()
    _refused(raw, LEFT, key)


def test_deleting_the_owner_revokes_the_key(acme, alice):
    key, raw = _owned(acme, alice)
    alice.delete()
    response = key_client(raw).get("/api/v1/segments/")
    assert response.status_code == 401
    key.refresh_from_db()
    assert key.revoked_at is not None and key.created_by is None


def test_a_change_made_behind_the_signals_back_still_takes_the_rights_away(acme, alice):
    """A queryset update sends no signal: the check on every use catches it."""
    key, raw = _owned(acme, alice)
    Membership.objects.filter(user=alice, workspace=acme).update(role=Role.VIEWER)
    _refused(raw, DEMOTED, key)


def test_a_key_made_by_a_key_follows_the_same_owner(acme, alice):
    _, raw = _owned(acme, alice)
    child = key_client(raw).post("/api/v1/api-keys/", {"name": "child", "scope": "management"}, format="json").json()
    assert ApiKey.objects.get(pk=child["id"]).created_by == alice
    alice.is_active = False
    alice.save()
    assert key_client(child["key"]).get("/api/v1/segments/").status_code == 401


def test_other_peoples_keys_and_inbound_keys_stay(acme, alice, oscar, acme_inbound_key):
    _, ops_raw = ApiKey.issue(acme, scope="management", name="oscar's", access="read", created_by=oscar)
    inbound, _ = ApiKey.issue(acme, scope="inbound", name="amp", created_by=alice)
    alice.is_active = False
    alice.save()
    assert key_client(ops_raw).get("/api/v1/segments/").status_code == 200
    inbound.refresh_from_db()
    assert inbound.revoked_at is None


def test_promotion_between_owner_and_ops_keeps_the_key(acme, alice):
    _, raw = _owned(acme, alice)
    membership = Membership.objects.get(user=alice, workspace=acme)
    membership.role = Role.OPS
    membership.save()
    assert key_client(raw).get("/api/v1/segments/").status_code == 200
