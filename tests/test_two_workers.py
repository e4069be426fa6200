"""Two real Celery worker processes on the same queues (tests/workers.py): a large import and a large
sync complete once; a worker killed mid-task (SIGKILL of its process group) loses nothing and sends
nothing twice, counted at the sandbox; the scheduler's tick, run by both workers at once, runs each
due job once."""

import datetime as dt
from collections import Counter
from contextlib import ExitStack

import pytest
from django.utils import timezone

from audiences.models import Segment, SegmentMember
from config.celery import app
from config.scheduler import find_lost_runs
from integrations.delivery.actions import start_run
from integrations.delivery.models import RunStatus as SyncStatus
from integrations.delivery.models import SyncJob, SyncRun
from integrations.models import Authorization
from integrations.redis_client import redis_client
from integrations.sandbox.amplitude import AmplitudeSandbox, running_amplitude_sandbox
from integrations.sandbox.partners import running_partner
from integrations.sources.actions import create_run
from integrations.sources.models import AmplitudeProject, CohortImportJob, ImportRun, RunStatus
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment
from tests.workers import send, wait_for

FINAL_SYNC = (SyncStatus.SUCCEEDED, SyncStatus.PARTIALLY_FAILED, SyncStatus.FAILED, SyncStatus.SKIPPED)


@pytest.fixture(autouse=True)
def short_heartbeats(settings):
    settings.RUN_LOST_SECONDS = 2  # as the workers have it (tests/workers.py)
    for key in redis_client().scan_iter("delivery:slots:*"):
        redis_client().delete(key)


@pytest.fixture
def sandboxes():
    with ExitStack() as stack:
        yield stack


def cohort_job(acme, amp, **fields) -> CohortImportJob:
    auth = Authorization(workspace=acme, provider="amplitude", label="Amplitude")
    auth.set_secrets({"api_key": amp.auth[0], "secret_key": amp.auth[1]})
    auth.save()
    project = AmplitudeProject.objects.create(workspace=acme, label="App", base_url=amp.base_url, authorization=auth)
    return CohortImportJob.objects.create(
        workspace=acme, project=project, label="Cohorts", **{"cadence": "one_time", **fields}
    )


def list_sync(acme, partner, members: range, *, list_id: str, batch_size: int, **job_fields) -> SyncJob:
    segment = make_segment(acme, name=f"Segment {list_id}", external_id=list_id)
    add_members(segment, make_profiles(acme, members))
    dest = destination(
        acme,
        "list_api",
        {"base_url": partner.base_url, "batch_size": batch_size},
        secrets={"api_key": "test-api-key"},
        name=f"List {list_id}",
    )
    return job_for(segment, dest, **job_fields)


def applied(partner) -> Counter:
    """Ids the list sandbox applied (answered 200), over every list: id -> times."""
    return Counter(
        uid
        for request in partner.fake.requests
        if request["path"].endswith("/add") and request["status"] == 200
        for uid in request["body"]["userIds"]
    )


def sync_ended(run_id: int) -> bool:
    return SyncRun.objects.get(pk=run_id).status in FINAL_SYNC


@pytest.mark.django_db(transaction=True)
def test_a_large_import_and_a_large_sync_complete_once_on_two_workers(workers, acme, sandboxes):
    amp = sandboxes.enter_context(running_amplitude_sandbox(AmplitudeSandbox(seed=7)))
    partner = sandboxes.enter_context(running_partner("list_api", latency=0.02))
    amp.sandbox.add_cohort("big", "Big cohort", size=100_000, churn=0.0)
    job = cohort_job(acme, amp, cohort_ids=["big"])
    sync_job = list_sync(acme, partner, range(20_000), list_id="7", batch_size=500)
    one, two = workers("two-a"), workers("two-b")
    one.ready(), two.ready()

    import_run = create_run(job, enqueue=False)
    sync_run = start_run(sync_job)
    send("integrations.sources.tasks.execute_run", import_run.pk, queue="imports")
    send("integrations.delivery.tasks.execute_run", sync_run.pk, queue="deliveries")
    wait_for(lambda: ImportRun.objects.get(pk=import_run.pk).finished_at, "the import to finish", timeout=300)
    wait_for(lambda: sync_ended(sync_run.pk), "the sync to finish", timeout=300)

    import_run.refresh_from_db()
    assert import_run.status == RunStatus.SUCCEEDED and "restarts" not in import_run.counts, import_run.error
    assert amp.sandbox.request_count("cohort_request") == 1
    segment = Segment.objects.get(external_id="big")
    assert segment.size == 100_000 == SegmentMember.objects.filter(segment=segment).count()
    sync_run.refresh_from_db()
    assert (sync_run.status, sync_run.delivered, sync_run.attempt) == (SyncStatus.SUCCEEDED, 20_000, 1)
    sent = applied(partner)
    assert set(sent) == {f"u{i}" for i in range(20_000)} and max(sent.values()) == 1


def _running_on(run_id: int, workers_by_node: dict):
    """The worker whose pool is executing the sync task of `run_id` (Celery's remote inspect)."""
    active = app.control.inspect(destination=list(workers_by_node), timeout=1.0).active() or {}
    for node, tasks in active.items():
        if any(task["name"].endswith("execute_run") and list(task["args"]) == [run_id] for task in tasks):
            return workers_by_node[node]
    return None


def _mid_flight(run_id: int, partner) -> bool:
    """Requests in flight at the partner and every answered one recorded: a kill must cost nothing."""
    delivered = SyncRun.objects.get(pk=run_id).delivered
    answered = sum(len(r["body"]["userIds"]) for r in partner.fake.find("/lists/") if r["status"] == 200)
    return delivered >= 300 and delivered == answered and partner.fake.stats()["in_flight"] > 0


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_sync_loses_nothing_and_sends_nothing_twice(workers, acme, sandboxes):
    partner = sandboxes.enter_context(running_partner("list_api", latency=0.4))
    job = list_sync(acme, partner, range(1000), list_id="8", batch_size=50)
    pool = {worker.node: worker for worker in (workers("kill-a"), workers("kill-b"))}
    for worker in pool.values():
        worker.ready()
    run = start_run(job)
    send("integrations.delivery.tasks.execute_run", run.pk, queue="deliveries")
    victim = wait_for(lambda: _running_on(run.pk, pool), "a worker to take the sync")
    wait_for(lambda: _mid_flight(run.pk, partner), "requests in flight", every=0.005)
    victim.kill()

    # Beat's lost-run check resumes it; the surviving worker sends the rest.
    assert wait_for(lambda: dict(find_lost_runs())["integrations.delivery.scheduling.mark_lost_runs"], "loss") == [
        run.pk
    ]
    wait_for(lambda: sync_ended(run.pk), "the resumed sync to finish")
    run.refresh_from_db()
    assert (run.status, run.delivered, run.failed, run.attempt) == (SyncStatus.SUCCEEDED, 1000, 0, 2)
    sent = applied(partner)
    assert set(sent) == {f"u{i}" for i in range(1000)}  # nothing lost
    assert max(sent.values()) == 1, [uid for uid, times in sent.items() if times > 1]  # nothing applied twice
    assert partner.fake.members("1") == set(sent)


@pytest.mark.django_db(transaction=True)
def test_two_ticks_on_two_workers_run_each_due_job_once(workers, acme, sandboxes):
    amp = sandboxes.enter_context(running_amplitude_sandbox(AmplitudeSandbox(seed=7)))
    partner = sandboxes.enter_context(running_partner("list_api", latency=0.01))
    amp.sandbox.add_cohort("due", "Due cohort", size=2_000, churn=0.0)
    due = timezone.now() - dt.timedelta(minutes=1)
    import_job = cohort_job(acme, amp, cohort_ids=["due"], cadence="hourly", next_run_at=due)
    sync_jobs = [
        list_sync(acme, partner, range(n * 1000, n * 1000 + 300), list_id=str(10 + n), batch_size=100, cadence="hourly")
        for n in range(3)
    ]
    SyncJob.objects.filter(pk__in=[j.pk for j in sync_jobs]).update(next_run_at=due)
    one, two = workers("tick-a"), workers("tick-b")
    one.ready(), two.ready()

    # Two beats (or a beat restarted) tick at the same moment, each tick on its own worker.
    send("config.scheduler.tick", queue="default")
    send("config.scheduler.tick", queue="default")

    def settled() -> bool:
        runs = SyncRun.objects.filter(job__in=sync_jobs)
        imports = ImportRun.objects.filter(cohort_job=import_job)
        return (
            runs.count() == len(sync_jobs)
            and all(r.status in FINAL_SYNC for r in runs)
            and imports.filter(finished_at__isnull=False).count() == imports.count() == 1
            and redis_client().llen("default") == 0
            and not any((app.control.inspect(timeout=1.0).active() or {}).values())
        )

    wait_for(settled, "every due job to have run", timeout=120, every=0.2)
    for job in sync_jobs:
        assert list(SyncRun.objects.filter(job=job).values_list("status", flat=True)) == [SyncStatus.SUCCEEDED]
    assert list(ImportRun.objects.filter(cohort_job=import_job).values_list("status", flat=True)) == [
        RunStatus.SUCCEEDED
    ]
    assert amp.sandbox.request_count("cohort_request") == 1  # one download: the job ran once
    sent = applied(partner)
    assert len(sent) == 900 and max(sent.values()) == 1
    for job in [*sync_jobs, import_job]:
        job.refresh_from_db()
        assert job.next_run_at > timezone.now()  # claimed and moved on, once
