"""Kahuna's merge rules: an anonymous (device-only) profile folds into the known one; two known
people are never merged automatically."""

import pytest

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.merge import Conflict, link_identity, link_pairs, merge_profiles
from audiences.models import Event, Identity, MembershipChange, Profile, ProfileMerge, Segment

PUSH = Cause("push", "inbound_batch", 1)


def person(acme, kind, value, **properties) -> Profile:
    profile = Profile.objects.get(pk=resolve(acme.pk, kind, [value]).profile_ids[value])
    if properties:
        profile.properties = properties
        profile.save()
    return profile


@pytest.fixture
def power_users(acme):
    return Segment.objects.create(workspace=acme, name="Power users", type="partner_amplitude", external_id="26umsb5")


@pytest.fixture
def churners(acme):
    return Segment.objects.create(workspace=acme, name="Churn risk", type="partner_amplitude", external_id="7khm89cz")


def test_an_anonymous_person_registering_keeps_their_profile(acme):
    device = person(acme, "device_id", "d1")
    profile_id, outcome = link_identity(acme.pk, ("user_id", "ada"), ("device_id", "d1"))
    assert profile_id == device.pk and outcome is None
    assert set(device.identities.values_list("kind", flat=True)) == {"device_id", "user_id"}
    assert not ProfileMerge.objects.exists()


def test_a_known_person_on_a_new_device_gains_the_device(acme):
    ada = person(acme, "user_id", "ada")
    assert link_identity(acme.pk, ("user_id", "ada"), ("device_id", "d1")) == (ada.pk, None)
    assert Identity.objects.get(value="d1").profile == ada


def test_two_unknown_ids_make_one_new_profile(acme):
    profile_id, outcome = link_identity(acme.pk, ("user_id", "ada"), ("device_id", "d1"))
    assert outcome is None and Profile.objects.get().pk == profile_id and Identity.objects.count() == 2


def test_the_anonymous_profile_merges_into_the_known_one(acme, power_users, churners):
    ada = person(acme, "user_id", "ada", plan="pro", country="DE")
    ada.event_counts = {"Purchase": 2}
    ada.save()
    anon = person(acme, "device_id", "d1", plan="free", color="red")
    Profile.objects.filter(pk=anon.pk).update(event_counts={"Purchase": 1, "Open": 4})
    Identity.objects.create(workspace=acme, profile=anon, kind="install_token", value="tok-1")
    Event.objects.create(workspace=acme, profile=anon, event_type="Open", device_id="d1")
    apply_changes(power_users, add=[ada.pk, anon.pk], cause=PUSH)  # both in: the merge removes one
    apply_changes(churners, add=[anon.pk], cause=PUSH)  # only the anonymous one: ada enters

    profile_id, merge = link_identity(
        acme.pk, ("user_id", "ada"), ("device_id", "d1"), cause=Cause("push", "inbound_batch", 9)
    )

    assert profile_id == ada.pk and isinstance(merge, ProfileMerge)
    assert not Profile.objects.filter(pk=anon.pk).exists()
    ada.refresh_from_db()
    assert set(ada.identities.values_list("value", flat=True)) == {"ada", "d1", "tok-1"}
    assert ada.properties == {"plan": "pro", "country": "DE", "color": "red"}  # the known profile wins
    assert ada.event_counts == {"Purchase": 3, "Open": 4}
    assert Event.objects.get().profile_id == ada.pk
    power_users.refresh_from_db()
    churners.refresh_from_db()
    assert (power_users.size, churners.size) == (1, 1)
    assert set(power_users.members.values_list("profile_id", flat=True)) == {ada.pk}
    assert set(churners.members.values_list("profile_id", flat=True)) == {ada.pk}
    merge_rows = MembershipChange.objects.filter(source="merge", cause_id=merge.pk)
    assert sorted(merge_rows.values_list("segment__external_id", "profile_id", "action")) == sorted(
        [
            ("26umsb5", anon.pk, "removed"),
            ("7khm89cz", anon.pk, "removed"),
            ("7khm89cz", ada.pk, "added"),
        ]
    )
    # The anonymous profile's own history survives the merge and the record says where it went.
    assert MembershipChange.objects.filter(profile_id=anon.pk, source="push").count() == 2
    assert (merge.kept_profile_id, merge.removed_profile_id, merge.cause_id) == (ada.pk, anon.pk, 9)
    assert sorted(map(tuple, merge.identities)) == [("device_id", "d1"), ("install_token", "tok-1")]


def test_two_known_people_are_never_merged(acme, power_users):
    ada = person(acme, "user_id", "ada")
    bob = person(acme, "user_id", "bob")
    Identity.objects.create(workspace=acme, profile=bob, kind="device_id", value="shared-tablet")
    profile_id, outcome = link_identity(acme.pk, ("user_id", "ada"), ("device_id", "shared-tablet"))
    assert profile_id == ada.pk and isinstance(outcome, Conflict) and "never merged" in outcome.reason
    assert Profile.objects.count() == 2 and Identity.objects.get(value="shared-tablet").profile == bob
    with pytest.raises(ValueError, match="known credential"):
        merge_profiles(acme.pk, ada.pk, bob.pk, reason="forced")


def test_an_already_linked_pair_changes_nothing(acme):
    link_identity(acme.pk, ("user_id", "ada"), ("device_id", "d1"))
    assert link_identity(acme.pk, ("user_id", "ada"), ("device_id", "d1"))[1] is None
    assert Profile.objects.count() == 1 and Identity.objects.count() == 2


def test_an_earlier_merge_record_follows_the_survivor(acme):
    phone = person(acme, "device_id", "phone")
    tablet = person(acme, "device_id", "tablet")
    first = merge_profiles(acme.pk, phone.pk, tablet.pk, reason="same install")
    person(acme, "user_id", "ada")
    link_identity(acme.pk, ("user_id", "ada"), ("device_id", "phone"))
    first.refresh_from_db()
    assert first.kept_profile == Identity.objects.get(value="ada").profile


def test_link_pairs_handles_every_case_in_one_call(acme):
    known = person(acme, "user_id", "known")
    anonymous = person(acme, "device_id", "anon-device")
    registering = person(acme, "device_id", "reg-device")
    other = person(acme, "user_id", "other")
    Identity.objects.create(workspace=acme, profile=other, kind="device_id", value="others-device")
    result = link_pairs(
        acme.pk,
        "user_id",
        [
            ("known", "new-device"),  # new device for a known person
            ("newbie", "newbie-device"),  # both unknown
            ("reg", "reg-device"),  # anonymous person registers
            ("known", "anon-device"),  # merge (known appears twice: sequential path)
            ("fresh", "others-device"),  # conflict with a known person
        ],
    )
    assert result.profile_ids["known"] == known.pk and result.profile_ids["reg"] == registering.pk
    assert len(result.merges) == 1 and result.merges[0].removed_profile_id == anonymous.pk
    assert len(result.conflicts) == 1 and result.conflicts[0].device == ("device_id", "others-device")
    assert Identity.objects.get(value="new-device").profile == known
    assert Identity.objects.get(value="newbie-device").profile_id == result.profile_ids["newbie"]
    assert Identity.objects.get(value="others-device").profile == other
