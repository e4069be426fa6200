"""A worker lost mid-run (kill -9 of its whole process group): the run says so within seconds, lets ops
retry (imports) or resumes (syncs, the Kochava stream), and a crash re-sends at most what was in flight,
which the run reports.

Real Celery workers (tests/workers.py), the sandbox partners and the sandbox Amplitude; beat's
lost-run check is called by the test (config.scheduler.find_lost_runs, what beat runs every
RUN_LOST_CHECK_SECONDS), with RUN_LOST_SECONDS=2.
"""

import re
from collections import Counter

import pytest
from django.utils import timezone

from audiences.models import Event, Segment, SegmentMember
from config.scheduler import find_lost_runs
from integrations.connectors.kochava.models import KochavaStream
from integrations.connectors.kochava.tasks import dispatch_due as dispatch_streams
from integrations.delivery.actions import start_run
from integrations.delivery.models import RunStatus as SyncStatus
from integrations.delivery.models import SyncRun
from integrations.redis_client import redis_client
from integrations.sources.actions import create_run, retry_run
from integrations.sources.models import ImportRun, RunStatus
from integrations.sources.runs import is_lost
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment
from tests.workers import send, wait_for

STOPPED_AT = re.compile(r"^The worker running this stopped at \d\d:\d\d [A-Z]{3,4}; ")  # in the workspace's zone


@pytest.fixture(autouse=True)
def short_heartbeats(settings):
    settings.RUN_LOST_SECONDS = 2  # what the workers use too (tests/workers.py)
    settings.KOCHAVA_STREAM_INTERVAL_SECONDS = 0
    for key in redis_client().scan_iter("delivery:slots:*"):
        redis_client().delete(key)


def lost(kind: str) -> list[int]:
    """One pass of beat's lost-run check; what it found for `kind` (imports, syncs or kochava)."""
    found = find_lost_runs()
    return next(ids for path, ids in found.items() if kind in path)


@pytest.mark.django_db(transaction=True)
def test_an_import_whose_worker_is_killed_is_lost_in_seconds_and_retried(workers, amp, cohort_job, alice, client):
    size = 30_000
    amp.sandbox.add_cohort("lost1", "Lost mid-way", size=size, churn=0.0)
    run = create_run(cohort_job, enqueue=False)
    first = workers("import-a").ready()
    send("integrations.sources.tasks.execute_run", run.pk, queue="imports")
    wait_for(lambda: ImportRun.objects.get(pk=run.pk).phase.startswith("loading"), "the load to start")
    first.kill()
    workers("import-b").ready()  # a fresh worker: the killed one's task stays with the broker

    # Within seconds, not the broker's visibility timeout: the heartbeat stops and the check says so.
    assert wait_for(lambda: lost("sources"), "the run to be found lost") == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.phase) == (RunStatus.FAILED, "lost")
    assert STOPPED_AT.match(run.error) and "retry the run" in run.error, run.error
    # The note is stored text: its time is written in the workspace's zone, as the pages show it.
    local = run.heartbeat_at.astimezone(cohort_job.workspace.tz)
    assert f"stopped at {local:%H:%M} {local.tzname()};" in run.error, run.error
    assert not Segment.objects.filter(external_id="lost1").exists()  # nothing half-applied
    client.force_login(alice)  # the sources page says so, with Retry
    page = client.get(f"/sources/{cohort_job.project_id}/").content.decode()
    assert "The worker running this stopped at" in page and f"/sources/runs/{run.pk}/retry/" in page
    assert amp.sandbox.request_count("cohort_request") == 1

    retry = retry_run(run)  # Retry accepts the lost run; the fresh worker imports it once
    wait_for(lambda: ImportRun.objects.get(pk=retry.pk).status == RunStatus.SUCCEEDED, "the retry to finish")
    segment = Segment.objects.get(external_id="lost1")
    assert segment.size == size == SegmentMember.objects.filter(segment=segment).count()
    assert amp.sandbox.request_count("cohort_request") == 2  # the lost run's download, and the retry's
    assert lost("sources") == []


@pytest.mark.django_db(transaction=True)
def test_retry_accepts_a_running_run_whose_worker_is_gone_before_the_check_ran(workers, amp, cohort_job):
    amp.sandbox.add_cohort("lost2", "Lost too", size=30_000, churn=0.0)
    run = create_run(cohort_job, enqueue=False)
    worker = workers("import-c").ready()
    send("integrations.sources.tasks.execute_run", run.pk, queue="imports")
    wait_for(lambda: ImportRun.objects.get(pk=run.pk).phase.startswith("loading"), "the load to start")
    worker.kill()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # what the dead worker left, until its heartbeat is stale
    wait_for(lambda: is_lost(ImportRun.objects.get(pk=run.pk), timezone.now()), "the heartbeat to go stale")
    retry = retry_run(ImportRun.objects.get(pk=run.pk), enqueue=False)
    run.refresh_from_db()
    assert (run.status, run.phase, retry.retry_of_id) == (RunStatus.FAILED, "lost", run.pk)


def _uploaded(partner) -> Counter:
    """Rows received by the CleverTap sandbox (answered or not): identity -> times sent (profile records)."""
    return Counter(
        record["identity"]
        for request in partner.fake.find("/1/upload")
        if isinstance(request["body"], dict)  # not a request cut off by the kill before its body
        for record in request["body"]["d"]
        if record["type"] == "profile"
    )


@pytest.mark.django_db(transaction=True)
def test_a_sync_whose_worker_is_killed_resumes_and_re_sends_at_most_what_was_in_flight(
    workers, acme, alice, client, partners
):
    members = 900
    partner = partners("clevertap", account_id="ACC-L", passcode="pass-l", latency=0.3)
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(members)))
    # 20 records per call = 10 members (a profile and a Partner Sync event each), 15 calls in flight.
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url, "batch_size": 20},
        secrets={"passcode": "pass-l"},
        fields={"account_id": "ACC-L"},
    )
    run = start_run(job_for(segment, dest))
    first = workers("sync-a").ready()
    send("integrations.delivery.tasks.execute_run", run.pk, queue="deliveries")
    wait_for(
        lambda: SyncRun.objects.get(pk=run.pk).delivered >= 150 and partner.fake.stats()["in_flight"] > 0,
        "requests in flight after some were recorded",
        every=0.01,
    )
    first.kill()
    workers("sync-b").ready()

    assert wait_for(lambda: lost("delivery"), "the run to be found lost") == [run.pk]
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).status not in ("queued", "running"), "the resumed run to end")
    run.refresh_from_db()
    assert (run.status, run.delivered, run.failed, run.attempt) == (SyncStatus.SUCCEEDED, members, 0, 2)
    assert run.in_flight_limit == 15 * 10
    sent = _uploaded(partner)
    assert set(sent) == {f"u{i}" for i in range(members)}  # nothing lost
    resent = sum(times - 1 for times in sent.values())
    # A crash re-sends at most what was in flight, and the run counts and shows that bound.
    assert resent <= run.resend_bound <= run.in_flight_limit, (resent, run.resend_bound)
    assert STOPPED_AT.match(run.lost_note), run.lost_note
    assert f"up to {run.resend_bound:,} people may have received a second Partner Sync event" in run.lost_note
    assert len(partner.fake.find("/1/upload")) <= members // 10 + 15  # requests: each batch once + those in flight
    client.force_login(alice)  # the sync page tells the user
    page = client.get(f"/syncs/{run.job_id}/").content.decode()
    assert run.lost_note in page and "may have received a second Partner Sync event" in page


@pytest.mark.django_db(transaction=True)
def test_a_kochava_stream_whose_worker_is_killed_re_sends_at_most_its_requests_in_flight(workers, acme, partners):
    partner = partners("kochava", latency=0.05)
    dest = destination(
        acme,
        "kochava",
        {
            "base_url": partner.base_url,
            "app_guid": "koapp-1",
            "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"},
            "event_types": ["Purchase"],
            "concurrency": 8,
            "send_users": False,
        },
        secrets={},
    )
    events = Event.objects.bulk_create(
        [
            Event(workspace=acme, uuid=f"k{i}", event_type="Purchase", device_id=f"k{i}", ip_address="10.0.0.1")
            for i in range(600)
        ]
    )
    first = workers("stream-a").ready()
    send("campaigns.tasks.run_kochava_stream", dest.pk, queue="default")

    def mid_stream():
        stream = KochavaStream.objects.filter(destination=dest).first()
        return stream and stream.last_event_id >= events[100].id and partner.fake.stats()["in_flight"] > 0

    wait_for(mid_stream, "events in flight after 100 were recorded", every=0.01)
    first.kill()
    workers("stream-b").ready()

    assert wait_for(lambda: lost("kochava"), "the pass to be found lost") == [dest.pk]
    stream = KochavaStream.objects.get(destination=dest)
    assert stream.resend_bound == stream.in_flight_limit == 8 and stream.heartbeat_at is None
    assert re.match(r"^The worker streaming this stopped at \d\d:\d\d [A-Z]{3,4}; ", stream.lost_note), stream.lost_note
    assert "up to 8 events may have been sent to Kochava twice" in stream.lost_note

    dispatch_streams(stream.next_run_at)  # the scheduler's next pass, on the fresh worker
    wait_for(
        lambda: KochavaStream.objects.filter(destination=dest, last_event_id=events[-1].id, heartbeat_at=None).exists(),
        "the next pass to catch up",
    )
    received = Counter(
        request["body"]["kochava_device_id"]
        for request in partner.fake.find("/track/json")
        if isinstance(request["body"], dict)  # not a request cut off by the kill before its body
    )
    assert set(received) == {f"k{i}" for i in range(600)}  # nothing lost
    resent = sum(times - 1 for times in received.values())
    assert resent <= stream.resend_bound  # the per-page cursor re-sent hundreds here
    stream.refresh_from_db()
    assert stream.events_sent == 600  # the counter counts each event once


def test_beat_looks_for_lost_runs_more_often_than_it_ticks():
    from config.celery import app

    entry = app.conf.beat_schedule["lost-runs"]
    assert entry["task"] == "config.scheduler.find_lost_runs" and entry["schedule"] < 60
