"""Kahuna's install_token is Amplitude's device id (issue 16.4): a person pushed by install token
and the same person identified with that anonymousId are one profile, counted once."""

from audiences.models import Identity, Profile, Segment
from integrations.models import ApiKey
from tests.delivery.helpers import destination, job_for, sync
from tests.inbound.conftest import drain, push


def install_token_key(acme) -> str:
    return ApiKey.issue(acme, scope="inbound", name="kahuna devices", identity_kind="install_token")[1]


def push_device(acme, device: str) -> Segment:
    key = install_token_key(acme)
    list_id = push("/api/amplitude/lists", {"name": "[Amplitude] Trial: t1"}, key).json()["listId"]
    assert push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [device]}, key).status_code == 200
    drain()
    return Segment.objects.get(pk=list_id)


def identities(profile: Profile) -> set[tuple[str, str]]:
    return set(profile.identities.values_list("kind", "value"))


def test_a_device_pushed_by_install_token_merges_with_identify_of_its_anonymous_id(acme, acme_inbound_key):
    segment = push_device(acme, "d7")
    push("/v1/identify", {"userId": "u7", "anonymousId": "d7", "traits": {"plan": "pro"}}, acme_inbound_key)
    drain()
    (profile,) = Profile.objects.all()
    assert identities(profile) == {("user_id", "u7"), ("device_id", "d7")}
    assert list(segment.members.values_list("profile_id", flat=True)) == [profile.pk]
    assert Segment.objects.get(pk=segment.pk).size == 1


def test_an_identified_person_pushed_later_by_install_token_is_not_a_second_profile(acme, acme_inbound_key):
    push("/v1/identify", {"userId": "u8", "anonymousId": "d8"}, acme_inbound_key)
    drain()
    segment = push_device(acme, "d8")
    (profile,) = Profile.objects.all()
    assert identities(profile) == {("user_id", "u8"), ("device_id", "d8")}
    assert list(segment.members.values_list("profile_id", flat=True)) == [profile.pk]


def test_a_kahuna_sync_mapping_install_token_still_sends_it(acme, acme_inbound_key, partners):
    segment = push_device(acme, "d9")
    assert not Identity.objects.filter(kind="install_token").exists()  # stored as the device id it is
    partner = partners("kahuna", secret_key="ks", api_key="ka")
    dest = destination(
        acme,
        "kahuna",
        {"base_url": partner.base_url, "environment": "p"},
        secrets={"secret_key": "ks", "api_key": "ka"},
    )
    run = sync(job_for(segment, dest, device_id_kind="install_token"))
    assert (run.status, run.delivered) == ("succeeded", 1), run.error
    (call,) = partner.fake.find("/api/userattributes")
    assert call["body"]["user_attributes_array"][0]["target"] == {"install_token": "d9"}
