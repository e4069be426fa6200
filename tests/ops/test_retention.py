"""Retention and pruning (retention.prune, `manage.py prune`, the admin's sizes)."""

import datetime as dt
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audiences.partitions import EVENTS, ensure_partitions, partition_name
from integrations.delivery.models import DeliveryRow, PartnerCall, SyncRun
from integrations.inbound.models import InboundBatch
from integrations.sources.models import EventImportJob, ImportRun
from retention.models import PruneRun
from retention.prune import next_pruning, prune
from tests.delivery.helpers import destination, job_for, make_profiles, make_segment

NOW = timezone.now()
OLD = NOW - dt.timedelta(days=800)  # past every default window


def batch(workspace, n: int, *, status: str, applied_at=None, body=b'{"ids": ["u1"]}') -> InboundBatch:
    return InboundBatch.objects.create(
        workspace=workspace,
        endpoint="list_add",
        identity_kind="user_id",
        body=body,
        dedupe_key=f"k{n}",
        status=status,
        received_at=(applied_at or NOW),
        applied_at=applied_at,
    )


def events(workspace, when: dt.datetime, count: int, prefix: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audiences_event (workspace_id, source, uuid, event_type, event_time, event_properties, "
            "user_properties, group_properties, data, loaded_at) "
            "SELECT %s, 'import', %s || g, 'Open', %s, '{}', '{}', '{}', '{}', now() FROM generate_series(1, %s) g",
            [workspace.pk, prefix, when, count],
        )


def event_count(workspace, prefix: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM audiences_event WHERE workspace_id = %s AND uuid LIKE %s",
            [workspace.pk, prefix + "%"],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def delivery(acme):
    """A job with an old finished run (rows, one carried failure), the job's latest run, an old
    run still running, and old partner calls."""
    segment = make_segment(acme)
    dest = destination(acme, "list_api", {"base_url": "https://partner.example"}, secrets={"api_key": "k"})
    job = job_for(segment, dest)
    people = make_profiles(acme, range(6))

    def run(status, finished_at, rows=(), carried=()):
        made = SyncRun.objects.create(workspace=acme, job=job, status=status, finished_at=finished_at)
        for profile in rows:
            DeliveryRow.objects.create(
                run=made,
                job=job,
                profile_id=profile,
                action="add",
                status="failed" if profile in carried else "delivered",
                carry_over=profile in carried,
            )
        return made

    old_done = run("succeeded", OLD, rows=people[:4], carried={people[3]})
    old_bare = run("failed", OLD)
    running = run("running", None, rows=people[4:5])
    SyncRun.objects.filter(pk=running.pk).update(created_at=OLD)
    latest = run("succeeded", OLD + dt.timedelta(hours=1), rows=people[5:6])
    for _ in range(3):
        call = PartnerCall.objects.create(
            destination=dest, run=old_bare, method="POST", url="https://p/x", request_summary="s"
        )
        PartnerCall.objects.filter(pk=call.pk).update(created_at=OLD)
    PartnerCall.objects.create(destination=dest, run=latest, method="POST", url="https://p/x", request_summary="new")
    return {"old_done": old_done, "old_bare": old_bare, "running": running, "latest": latest, "carried": people[3]}


@pytest.fixture
def imports(acme):
    from integrations.models import Authorization
    from integrations.sources.models import AmplitudeProject

    auth = Authorization(workspace=acme, provider="amplitude", label="Amplitude")
    auth.set_secrets({"api_key": "a", "secret_key": "s"})
    auth.save()
    project = AmplitudeProject.objects.create(
        workspace=acme, label="p", base_url="https://amplitude.example", authorization=auth
    )
    job = EventImportJob.objects.create(workspace=acme, project=project, label="events")
    old = ImportRun.objects.create(workspace=acme, event_job=job, status="succeeded", finished_at=OLD)
    retried = ImportRun.objects.create(workspace=acme, event_job=job, status="failed", finished_at=OLD, retry_of=old)
    running = ImportRun.objects.create(workspace=acme, event_job=job, status="running")
    return {"import_old": old, "import_retried": retried, "import_running": running}


@pytest.fixture
def filled(acme, globex, delivery, imports):
    ensure_partitions()
    old_applied = batch(acme, 1, status="applied", applied_at=OLD)
    unapplied = batch(acme, 2, status="accepted")
    InboundBatch.objects.filter(pk=unapplied.pk).update(received_at=OLD)
    failed = batch(acme, 3, status="failed")
    InboundBatch.objects.filter(pk=failed.pk).update(received_at=OLD)
    fresh = batch(acme, 4, status="applied", applied_at=NOW)
    events(acme, OLD, 5, "old-")
    events(acme, NOW - dt.timedelta(days=1), 3, "new-")
    return {**delivery, **imports, "old_applied": old_applied, "unapplied": unapplied, "failed": failed, "fresh": fresh}


def test_next_pruning_is_the_coming_daily_hour(settings):
    settings.RETENTION_HOUR_UTC = 3
    assert next_pruning(dt.datetime(2026, 5, 1, 2, 0, tzinfo=dt.UTC)) == dt.datetime(2026, 5, 1, 3, 30, tzinfo=dt.UTC)
    assert next_pruning(dt.datetime(2026, 5, 1, 4, 0, tzinfo=dt.UTC)) == dt.datetime(2026, 5, 2, 3, 30, tzinfo=dt.UTC)


def test_a_dry_run_reports_what_would_go_and_removes_nothing(filled, acme):
    out = io.StringIO()
    call_command("prune", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "inbound_inboundbatch.body: would remove 1" in text
    assert "audiences_event: would remove 5" in text
    # The old finished runs' rows (the latest run's too: it finished long ago), not the carried one.
    assert "delivery_deliveryrow: would remove 4" in text
    assert "delivery_partnercall: would remove 3" in text
    assert "delivery_syncrun: would remove 1" in text and "sources_importrun: would remove 2" in text
    # Nothing moved.
    filled["old_applied"].refresh_from_db()
    assert filled["old_applied"].body is not None
    assert event_count(acme, "old-") == 5 and DeliveryRow.objects.count() == 6 and PartnerCall.objects.count() == 4
    assert SyncRun.objects.count() == 4 and ImportRun.objects.count() == 3
    record = PruneRun.objects.get()
    assert record.dry_run and record.trigger == "command" and record.removed["audiences_event"] == 5


def test_prune_removes_what_is_past_its_window_and_keeps_what_unfinished_work_needs(filled, acme):
    out = io.StringIO()
    call_command("prune", stdout=out)
    assert "audiences_event: removed 5" in out.getvalue()

    bodies = dict(InboundBatch.objects.values_list("pk", "body"))
    assert bodies[filled["old_applied"].pk] is None
    # An unapplied batch (and a failed one, which ops may retry) keeps its body; so does a recent one.
    assert bytes(bodies[filled["unapplied"].pk]) == bytes(bodies[filled["failed"].pk]) == b'{"ids": ["u1"]}'
    assert bodies[filled["fresh"].pk] is not None

    assert event_count(acme, "old-") == 0 and event_count(acme, "new-") == 3
    # Delivery rows: the running run's and the carried failure stay; the finished runs' others go.
    left = set(DeliveryRow.objects.values_list("run_id", "profile_id"))
    assert left == {
        (filled["old_done"].pk, filled["carried"]),
        (filled["running"].pk, DeliveryRow.objects.get(run=filled["running"]).profile_id),
    }
    # Runs: the old bare one goes; the one holding a carried row, the running one and the latest stay.
    assert set(SyncRun.objects.values_list("pk", flat=True)) == {
        filled["old_done"].pk,
        filled["running"].pk,
        filled["latest"].pk,
    }
    assert list(PartnerCall.objects.values_list("request_summary", flat=True)) == ["new"]
    # Import runs: the old ones go except the job's latest (here the running one is the latest).
    assert list(ImportRun.objects.values_list("pk", flat=True)) == [filled["import_running"].pk]

    # A second pruning finds nothing left.
    again = prune()
    assert dict(again.removed) == {}


def test_prune_deletes_in_bounded_batches(acme, delivery):
    dest = delivery["latest"].job.destination
    for _ in range(10):
        call = PartnerCall.objects.create(destination=dest, method="GET", url="https://p/y", request_summary="x")
        PartnerCall.objects.filter(pk=call.pk).update(created_at=OLD)
    report = prune(batch_size=3)
    assert report.removed["delivery_partnercall"] == 13
    assert report.largest_batch == 3
    # 13 calls at 3 a statement: 5 statements for them (the last one short), besides the others'.
    assert report.batches >= 5
    assert PartnerCall.objects.filter(created_at__lt=NOW - dt.timedelta(days=30)).count() == 0


def test_a_whole_old_partition_is_dropped_unless_a_workspace_still_keeps_it(acme, globex):
    month = dt.datetime(NOW.year - 3, 2, 10, tzinfo=dt.UTC)
    ensure_partitions(now=month, months_ahead=0)  # a month three years back
    name = partition_name(EVENTS.table, month.date().replace(day=1))
    events(acme, month, 4, "a-")
    events(globex, month, 2, "g-")

    globex.retention = {"events": 3650}  # ten years: Globex keeps its events
    globex.save()
    report = prune()
    assert name not in report.dropped_partitions
    assert event_count(acme, "a-") == 0 and event_count(globex, "g-") == 2

    globex.retention = {}
    globex.save()
    dry = prune(dry_run=True)
    assert dry.dropped_partitions == [name] and event_count(globex, "g-") == 2
    report = prune()
    assert report.dropped_partitions == [name]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        assert cursor.fetchone()[0] is None
    assert event_count(globex, "g-") == 0


def test_a_workspaces_own_window_applies_to_it_alone(acme, globex):
    ensure_partitions()
    when = NOW - dt.timedelta(days=20)
    events(acme, when, 3, "a-")
    events(globex, when, 3, "g-")
    acme.retention = {"events": 10}
    acme.full_clean()
    acme.save()
    prune()
    assert event_count(acme, "a-") == 0 and event_count(globex, "g-") == 3


def test_erasure_still_removes_a_persons_events_from_the_partitions(acme):
    from audiences.erasure import erase

    ensure_partitions()
    (person,) = make_profiles(acme, range(1))
    with connection.cursor() as cursor:
        for when in (OLD, NOW - dt.timedelta(days=40), NOW):
            cursor.execute(
                "INSERT INTO audiences_event (workspace_id, profile_id, source, event_type, event_time, event_properties, "
                "user_properties, group_properties, data, loaded_at) VALUES (%s, %s, 'import', 'Open', %s, '{}', '{}', '{}', "
                "'{}', now())",
                [acme.pk, person, when],
            )
    erase(acme, kind="user_id", value="u0", via="api")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audiences_event WHERE profile_id = %s", [person])
        assert cursor.fetchone()[0] == 0


@pytest.mark.parametrize("bad", [{"events": 0}, {"bodies": 3}, {"events": "30"}, {"events": True}, "30 days"])
def test_a_workspace_retention_window_is_checked(acme, bad):
    acme.retention = bad
    with pytest.raises(ValidationError):
        acme.full_clean()


def test_ops_see_table_sizes_and_the_next_pruning_in_the_admin(client, django_user_model, acme):
    ensure_partitions()
    events(acme, NOW, 2, "x-")
    PruneRun.objects.create(trigger="command", removed={"audiences_event": 7}, finished_at=NOW)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get("/admin/retention/prunerun/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="table-sizes"' in html and "<code>audiences_event</code>" in html
    assert "<code>audiences_membershipchange</code>" in html and "Next pruning" in html
    assert "audiences_event: 7" in html
