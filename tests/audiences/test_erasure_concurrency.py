"""Erasure against writers running at the same moment, on real connections: a push for the same id,
an apply half-way through, a sync with the person read but not yet sent, a long import."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from audiences import erasure as erasure_module
from audiences.erasure import erase
from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.models import Erasure, Identity, MembershipChange, Profile, Segment, SegmentMember
from audiences.people_lock import hold_people
from integrations.delivery.actions import start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import DeliveryRow
from tests.audiences.test_erasure import owner_api, rows_naming
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401 - the sandboxes, per test
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment
from tests.inbound.conftest import fixture, push

pytestmark = pytest.mark.django_db(transaction=True)


class Worker(threading.Thread):
    """Runs `target` on its own database connection; re-raises its error on join."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.error, self.result = target, None, None

    def run(self):
        try:
            self.result = self.target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test by finish()
            self.error = exc
        finally:
            connections.close_all()

    def finish(self, timeout: float = 60):
        self.join(timeout)
        assert not self.is_alive(), "the worker never finished"
        if self.error:
            raise self.error
        return self.result


def wait_for_lock_waiter(text: str, timeout: float = 30) -> None:
    """Until some session of this database waits for a lock in a statement containing `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE %s AND pid <> pg_backend_pid()",
                [f"%{text}%"],
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError(f"no session ever waited in {text!r}")


def no_orphans() -> None:
    """Every row that points at a person points at one that exists."""
    people = set(Profile.objects.values_list("pk", flat=True))
    for model in (Identity, SegmentMember, MembershipChange):
        assert set(model.objects.values_list("profile_id", flat=True)) <= people, model
    assert set(DeliveryRow.objects.values_list("profile_id", flat=True)) <= people
    for segment in Segment.objects.all():
        assert segment.size == segment.members.count(), segment


def test_a_push_arriving_during_the_erasure_makes_a_new_clean_person(acme, alice, acme_inbound_key, monkeypatch):
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["race-bob", "race-carol"]}, acme_inbound_key)
    old = Identity.objects.get(value="race-bob").profile_id
    inside, go = threading.Event(), threading.Event()
    real_delete = erasure_module._delete_rows

    def paused_delete(*args, **kwargs):  # the erasure holds the people lock here
        inside.set()
        assert go.wait(30)
        return real_delete(*args, **kwargs)

    monkeypatch.setattr(erasure_module, "_delete_rows", paused_delete)
    erasing = Worker(lambda: erase(acme, value="race-bob", user=alice, label="alice"))
    erasing.start()
    assert inside.wait(30)
    # Amplitude pushes Bob again now; the push is accepted (2xx) and its apply waits for the erasure.
    pushing = Worker(lambda: push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["race-bob"]}, acme_inbound_key))
    pushing.start()
    wait_for_lock_waiter("pg_advisory_xact_lock_shared")
    go.set()
    erasing.finish()
    assert pushing.finish().status_code == 200

    new = Identity.objects.get(value="race-bob").profile_id
    assert new != old
    assert list(MembershipChange.objects.filter(profile_id=new).values_list("action", flat=True)) == ["added"]
    assert not MembershipChange.objects.filter(profile_id=old).exists()
    assert Segment.objects.get(pk=list_id).size == 2  # Carol and the new Bob
    no_orphans()


def test_an_apply_half_way_through_finishes_first_and_is_erased_too(acme, alice):
    [bob] = make_profiles(acme, range(1, 2))  # user id u1
    segment = make_segment(acme)
    written, committed, go = threading.Event(), threading.Event(), threading.Event()

    def apply_in_flight():  # what an inbound apply does: resolve (the people lock), then the ledger
        with transaction.atomic():
            profile = resolve(acme.pk, "user_id", ["u1"]).profile_ids["u1"]
            apply_changes(segment, add=[profile], cause=Cause("push", "test"))
            written.set()
            assert go.wait(30)
        committed.set()

    applying = Worker(apply_in_flight)
    applying.start()
    assert written.wait(30)
    erasing = Worker(lambda: erase(acme, value="u1", user=alice, label="alice"))
    erasing.start()
    wait_for_lock_waiter("pg_advisory_xact_lock(")  # the erasure waits for the apply
    assert not committed.is_set()
    go.set()
    applying.finish()
    erasing.finish()

    assert not Profile.objects.filter(pk=bob).exists()
    assert not SegmentMember.objects.filter(segment=segment).exists() and Segment.objects.get(pk=segment.pk).size == 0
    no_orphans()


def test_a_sync_in_flight_never_sends_the_person_after_the_erasure(acme, alice, partners, settings):  # noqa: F811
    settings.DELIVERY_READ_TIMEOUT = 30
    clevertap = partners("clevertap", account_id="ACC-R", passcode="pass-r", latency=3.0)
    dest = destination(
        acme,
        "clevertap",
        {"base_url": clevertap.base_url, "batch_size": 2},  # one person (profile + event) per call
        secrets={"passcode": "pass-r"},
        fields={"account_id": "ACC-R"},
    )
    people = make_profiles(acme, range(1, 17))  # 15 go out at once; the 16th, u16, is read but waits
    segment = make_segment(acme)
    add_members(segment, people)
    run = start_run(job_for(segment, dest))
    syncing = Worker(lambda: execute_run(run.pk))
    syncing.start()
    deadline = time.monotonic() + 30
    while not clevertap.fake.find("/1/upload") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clevertap.fake.find("/1/upload"), "the sync never started"

    result = erase(acme, value="u16", user=alice, label="alice")
    syncing.finish()

    uploads = [r["body"] for r in clevertap.fake.find("/1/upload")]
    assert not [body for body in uploads if "u16" in str(body)]  # read before the erasure, dropped after it
    assert clevertap.fake.find("/1/delete/profiles.json")[0]["body"] == {"identity": ["u16"]}
    assert "u16" not in clevertap.fake.profiles and len(clevertap.fake.profiles) == 15
    assert [d["outcome"] for d in result.destinations] == ["deleted"]
    run.refresh_from_db()
    assert (run.status, run.delivered) == ("succeeded", 15)
    assert rows_naming(["u16", "d16"]) == []
    no_orphans()


def test_an_erasure_that_cannot_get_in_gives_up_changing_nothing(acme, alice, settings):
    settings.ERASURE_LOCK_TIMEOUT_SECONDS = 1
    make_profiles(acme, range(1, 2))
    holding, go = threading.Event(), threading.Event()

    def long_writer():  # a cohort import matching people, for minutes
        with transaction.atomic():
            hold_people(acme.pk)
            holding.set()
            assert go.wait(30)

    writer = Worker(long_writer)
    writer.start()
    assert holding.wait(30)
    try:
        response = owner_api(alice).post("/api/v1/erasures/", {"identity": "u1"}, content_type="application/json")
    finally:
        go.set()
        writer.finish()
    assert response.status_code == 409 and response["Retry-After"]
    assert response.json()["error"]["code"] == "busy"
    assert Identity.objects.filter(value="u1").exists() and not Erasure.objects.exists()
