"""Live-behaviour campaigns: enrollment from what a sync delivered, sent once, on the sandbox over HTTP."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection

from audiences.models import MembershipChange
from campaigns import engine, service
from campaigns.models import Enrollment, SendBatch
from integrations.delivery.models import RunMode
from tests.delivery.helpers import remove_members, sync


def launched(world, **fields):
    campaign = world.campaign(**fields)
    return service.launch(campaign)


def enrolled(campaign) -> dict[str, str]:
    return {e.to_value: e.status for e in Enrollment.objects.filter(campaign=campaign)}


def test_a_person_is_enrolled_only_after_clevertap_accepted_them(world):
    world.sync()  # the first (empty) sync: the segment is now synced to CleverTap
    campaign = launched(world)
    world.fake.reject_ids = {"u3"}  # CleverTap refuses u3's records in the next upload
    world.add(range(5))
    assert Enrollment.objects.filter(campaign=campaign).count() == 0  # added, not yet delivered: nobody enrolled
    run = world.sync()
    assert run.delivered == 4 and run.rejected == 1
    engine.run_campaign(campaign.pk)
    assert enrolled(campaign) == {f"u{i}": "sent" for i in (0, 1, 2, 4)}
    assert world.sends("u3") == 0 and world.sends("u0") == 1
    # Each enrollment names the ledger change that put the person there.
    enrollment = Enrollment.objects.get(campaign=campaign, to_value="u0")
    change = MembershipChange.objects.get(pk=enrollment.change_id)
    assert (change.profile_id, change.action, change.segment_id) == (world.profiles[0], "added", world.segment.pk)
    # Once a later run delivers u3 (a full resync, no longer refused), u3 enters too; the others,
    # delivered again by the same resync for the same ledger change, are not enrolled again.
    world.fake.reject_ids = set()
    sync(world.job, RunMode.FULL)
    engine.run_campaign(campaign.pk)
    assert enrolled(campaign)["u3"] == "sent" and world.sends("u3") == 1
    assert Enrollment.objects.filter(campaign=campaign).count() == 5
    assert world.fake.stats()["duplicate_sends"] == 0


def test_people_added_before_the_launch_are_not_sent(world):
    world.add(range(3))
    world.sync()
    campaign = launched(world)
    world.add(range(3, 5))
    world.sync()
    engine.run_campaign(campaign.pk)
    assert set(enrolled(campaign)) == {"u3", "u4"}


def test_a_replayed_push_and_a_redelivered_task_send_nobody_twice(world):
    world.sync()
    campaign = launched(world)
    world.add(range(4))
    world.sync()
    engine.run_campaign(campaign.pk)
    world.add(range(4))  # the same push again: no new ledger row
    world.sync()
    engine.run_campaign(campaign.pk)  # the task delivered again
    engine.run_campaign(campaign.pk)
    assert Enrollment.objects.filter(campaign=campaign).count() == 4
    assert [world.sends(f"u{i}") for i in range(4)] == [1, 1, 1, 1]
    assert world.fake.stats()["duplicate_sends"] == 0


def test_removed_never_enrolls(world):
    world.add(range(3))
    world.sync()
    campaign = launched(world)
    remove_members(world.segment, [world.profiles[0], world.profiles[1]])
    world.sync()
    engine.run_campaign(campaign.pk)
    assert Enrollment.objects.filter(campaign=campaign).count() == 0
    assert world.fake.stats()["campaign_sends"] == 0


@pytest.mark.parametrize(("reentry", "sends"), [("never", 1), ("after_removal", 2)])
def test_re_entry_after_removal_follows_the_campaign_setting(world, reentry, sends):
    world.sync()
    campaign = launched(world, reentry=reentry)
    world.add([0])
    world.sync()
    engine.run_campaign(campaign.pk)
    remove_members(world.segment, [world.profiles[0]])
    world.sync()
    world.add([0])  # back in: a new Added change
    world.sync()
    engine.run_campaign(campaign.pk)
    assert Enrollment.objects.filter(campaign=campaign, to_value="u0").count() == sends
    assert world.sends("u0") == sends


def test_a_stopped_campaign_sends_nothing_more(world):
    world.sync()
    campaign = launched(world)
    world.add(range(3))
    world.sync()
    engine.enroll_from_runs(campaign.pk)  # enrolled, not yet sent
    service.stop(campaign)
    engine.run_campaign(campaign.pk)
    engine.send_pending(campaign.pk)
    assert set(enrolled(campaign).values()) == {"skipped"}
    world.add(range(3, 6))
    world.sync()
    engine.run_campaign(campaign.pk)
    assert Enrollment.objects.filter(campaign=campaign).count() == 3
    assert world.fake.stats()["campaign_sends"] == 0


def test_a_lost_send_answer_is_unknown_then_settled_by_lookup_not_resent(world):
    world.sync()
    campaign = launched(world)
    world.add(range(3))
    world.sync()
    world.fake.lose_answers = 1  # CleverTap sends, the answer never arrives
    engine.run_campaign(campaign.pk)
    assert set(enrolled(campaign).values()) == {"unknown"}
    assert Enrollment.objects.filter(campaign=campaign).first().get_status_display() == "Unknown — checking"
    engine.run_campaign(campaign.pk)  # nothing is pending: nothing is re-sent
    batch = SendBatch.objects.get(campaign=campaign)
    later = batch.next_check_at
    assert engine.check_unknown_batches(later) == 1
    assert set(enrolled(campaign).values()) == {"sent"}
    assert [world.sends(f"u{i}") for i in range(3)] == [1, 1, 1]


def test_a_send_that_never_reached_clevertap_is_resent_after_two_lookups(world):
    world.sync()
    campaign = launched(world)
    world.add(range(2))
    world.sync()
    world.fake.set_faults(script=[{"drop": True}])  # connection dropped before CleverTap applied it
    engine.run_campaign(campaign.pk)
    assert set(enrolled(campaign).values()) == {"unknown"}
    first = SendBatch.objects.get(campaign=campaign)
    engine.check_unknown_batches(first.next_check_at)  # absent once: looked at again later
    assert set(enrolled(campaign).values()) == {"unknown"}
    first.refresh_from_db()
    engine.check_unknown_batches(first.next_check_at)  # absent twice: not applied, sent again
    engine.run_campaign(campaign.pk)
    assert set(enrolled(campaign).values()) == {"sent"}
    assert [world.sends("u0"), world.sends("u1")] == [1, 1]


def test_a_429_sends_the_same_people_once_later(world):
    world.sync()
    campaign = launched(world)
    world.add(range(2))
    world.sync()
    world.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "0"}}])
    engine.run_campaign(campaign.pk)
    assert set(enrolled(campaign).values()) == {"sent"}
    assert [world.sends("u0"), world.sends("u1")] == [1, 1]


def test_sends_go_in_batches_of_the_configured_size(world, settings):
    settings.CAMPAIGN_SEND_BATCH_SIZE = 4
    world.sync()
    campaign = launched(world)
    world.add(range(10))
    world.sync()
    engine.run_campaign(campaign.pk)
    sizes = sorted(len(r["body"]["to"]["identity"]) for r in world.fake.find("/1/send/push.json"))
    assert sizes == [2, 4, 4]


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_enroll_and_send_each_person_once(world, settings):
    settings.CAMPAIGN_SEND_BATCH_SIZE = 3
    world.fake.set_faults(latency=0.05)  # keeps calls in flight so the workers overlap
    world.sync()
    campaign = launched(world)
    world.add(range(20))
    world.sync()
    errors = []
    barrier = threading.Barrier(2)

    def worker():
        try:
            barrier.wait()
            engine.run_campaign(campaign.pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Enrollment.objects.filter(campaign=campaign).count() == 20
    assert set(enrolled(campaign).values()) == {"sent"}
    assert [world.sends(f"u{i}") for i in range(20)] == [1] * 20
    assert world.fake.stats()["duplicate_sends"] == 0


def test_send_slots_are_spaced_by_the_pacing_limit_across_workers(world):
    # Three reservations at the same instant (three workers): 1/rate apart, whoever asks.
    now = 1_000_000.0
    slots = [engine.next_slot("ACC-pace", 5.0, now) for _ in range(3)]
    assert slots == pytest.approx([now, now + 0.2, now + 0.4])
    # Another account has its own pace.
    assert engine.next_slot("ACC-other", 5.0, now) == pytest.approx(now)
