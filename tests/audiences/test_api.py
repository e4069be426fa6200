"""Management API for segments, members and profile lookup; the admin screens render."""

import pytest

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.merge import link_identity
from audiences.models import Profile, Segment
from tests.conftest import key_client

PUSH = Cause("push", "inbound_batch", 1)


@pytest.fixture
def power_users(acme):
    segment = Segment.objects.create(
        workspace=acme, name="Power users", type="partner_amplitude", external_id="26umsb5"
    )
    ids = resolve(acme.pk, "user_id", ["ada", "bob", "cyd"]).profile_ids
    apply_changes(segment, add=list(ids.values()), cause=PUSH)
    apply_changes(segment, remove=[ids["cyd"]], cause=PUSH)
    return segment


def test_segments_list_size_and_24h_movement(acme, power_users, acme_management_key):
    response = key_client(acme_management_key).get("/api/v1/segments/")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert (row["type_label"], row["size"], row["added_24h"], row["removed_24h"]) == ("Partner - Amplitude", 2, 3, 1)
    assert row["last_changed_at"]


def test_members_paginate_with_a_cursor_and_filter_by_identity(acme, power_users, acme_management_key):
    client = key_client(acme_management_key)
    page = client.get(f"/api/v1/segments/{power_users.pk}/members/?page_size=1").json()
    assert len(page["results"]) == 1 and page["next"]
    rest = client.get(page["next"]).json()
    values = {page["results"][0]["identities"][0]["value"], rest["results"][0]["identities"][0]["value"]}
    assert values == {"ada", "bob"}
    only_bob = client.get(f"/api/v1/segments/{power_users.pk}/members/?identity=bob").json()["results"]
    assert [m["identities"][0]["value"] for m in only_bob] == ["bob"]


def test_profile_lookup_by_any_identity_shows_history_and_merges(acme, power_users, acme_management_key):
    resolve(acme.pk, "device_id", ["phone-1"])
    link_identity(acme.pk, ("user_id", "ada"), ("device_id", "phone-1"))
    body = key_client(acme_management_key).get("/api/v1/profiles/lookup/?identity=phone-1").json()
    (profile,) = body["results"]
    assert {(i["kind"], i["value"]) for i in profile["identities"]} == {("user_id", "ada"), ("device_id", "phone-1")}
    assert [m["segment_name"] for m in profile["memberships"]] == ["Power users"]
    assert profile["ledger"][0]["partner_sync"]["Action"] == "Added"
    assert len(profile["merges"]) == 1


def test_lookup_needs_a_value_and_other_workspaces_see_nothing(
    acme, power_users, acme_management_key, globex_management_key
):
    assert key_client(acme_management_key).get("/api/v1/profiles/lookup/").status_code == 400
    outsider = key_client(globex_management_key)
    assert outsider.get("/api/v1/profiles/lookup/?identity=ada").json()["results"] == []
    assert outsider.get(f"/api/v1/segments/{power_users.pk}/members/").status_code == 404
    ada = Profile.objects.get(identities__value="ada")
    assert outsider.get(f"/api/v1/profiles/{ada.pk}/").status_code == 404


def test_inbound_batches_and_backlog(acme, acme_management_key):
    client = key_client(acme_management_key)
    assert client.get("/api/v1/inbound-batches/").status_code == 200
    assert client.get("/api/v1/inbound-batches/backlog/").json() == {"accepted_not_applied": 0}


@pytest.mark.parametrize(
    "model", ["profile", "identity", "segment", "segmentmember", "membershipchange", "profilemerge", "event"]
)
def test_audience_admin_pages_render_for_ops(client, oscar, power_users, model):
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk=oscar.pk).update(is_superuser=True)
    client.force_login(oscar)
    assert client.get(f"/admin/audiences/{model}/").status_code == 200
    for query in ("ada", "12"):
        assert client.get(f"/admin/audiences/{model}/?q={query}").status_code == 200


@pytest.mark.parametrize("model", ["inboundbatch", "inboundrequest"])
def test_inbound_admin_pages_render(client, oscar, acme, acme_inbound_key, model):
    from django.contrib.auth import get_user_model

    from tests.inbound.conftest import fixture, push

    push("/api/amplitude/identify", fixture("amplitude_cohort_sync/identify_single.json"), acme_inbound_key)
    get_user_model().objects.filter(pk=oscar.pk).update(is_superuser=True)
    client.force_login(oscar)
    listing = client.get(f"/admin/inbound/{model}/")
    assert listing.status_code == 200
    from integrations.inbound.models import InboundBatch, InboundRequest

    obj = (InboundBatch if model == "inboundbatch" else InboundRequest).objects.first()
    assert client.get(f"/admin/inbound/{model}/{obj.pk}/change/").status_code == 200


def test_identities_with_value_finds_every_kind_of_the_workspace_only(acme, globex):
    from audiences.identity import identities_with_value, identity_kinds

    resolve(acme.pk, "user_id", ["same-value", "u-1"])
    resolve(acme.pk, "email", ["same-value"])
    resolve(acme.pk, "property:crm_id", ["same-value"])
    resolve(globex.pk, "device_id", ["same-value"])
    assert identity_kinds(acme.pk) == ["email", "property:crm_id", "user_id"]
    assert identity_kinds(globex.pk) == ["device_id"]
    found = identities_with_value(acme.pk, "same-value")
    assert sorted(found.values_list("kind", flat=True)) == ["email", "property:crm_id", "user_id"]
    assert list(identities_with_value(acme.pk, "same-value", "email").values_list("kind", flat=True)) == ["email"]
    assert not identities_with_value(acme.pk, "nobody").exists()
    assert identity_kinds(999_999) == [] and not identities_with_value(999_999, "same-value").exists()
