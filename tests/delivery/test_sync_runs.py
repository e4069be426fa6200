"""Sync runs end to end against the sandbox list partner: diffs, invalid rows, retries, waits, actions."""

import datetime as dt

import pytest
from django.utils import timezone

from audiences.models import MembershipChange
from integrations.connectors.base import Limits
from integrations.connectors.list_api import ListApiConnector
from integrations.delivery.actions import reset_diff, start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import DeliveryRow, PartnerCall, RunMode, RunStatus, SyncJob
from integrations.delivery.planning import build_connector, dry_run, plan_run
from integrations.delivery.scheduling import dispatch_due
from tests.delivery.helpers import (
    add_members,
    destination,
    job_for,
    make_profiles,
    make_segment,
    remove_members,
    row_statuses,
    sync,
)


@pytest.fixture
def list_sync(acme, partners):
    """(partner, job, profile ids) — a list destination and a segment with members u0..u9."""
    partner = partners("list_api")
    segment = make_segment(acme)
    profiles = make_profiles(acme, range(20))
    add_members(segment, profiles[:10])
    dest = destination(
        acme, "list_api", {"base_url": partner.base_url, "batch_size": 4}, secrets={"api_key": "test-api-key"}
    )
    return partner, job_for(segment, dest), profiles


def members(partner, job):
    job.refresh_from_db()
    return partner.fake.members(job.partner_state["list_id"])


def test_first_sync_creates_one_list_named_after_the_segment_and_sends_everyone(list_sync):
    partner, job, _ = list_sync
    run = sync(job)
    assert run.status == RunStatus.SUCCEEDED and run.full
    assert members(partner, job) == {f"u{i}" for i in range(10)}
    (created,) = partner.fake.find("/lists", "POST")[:1]
    assert created["body"]["name"] == "[Amplitude] Cart Drop off: 1638361188"
    assert created["body"]["context"] == {"integration": {"name": "Amplitude Cohort Sync", "version": "1.0.0"}}
    assert (run.to_add, run.delivered, run.rows_done, run.rows_total) == (10, 10, 10, 10)
    assert job.cursor == MembershipChange.objects.filter(segment=job.segment).latest("id").id
    assert all(len(r["body"]["userIds"]) <= 4 for r in partner.fake.find("/lists/1/add"))
    sync(job)  # a second run reuses the list
    assert len(partner.fake.lists) == 1


def test_later_runs_send_only_the_net_changes_since_the_cursor(list_sync):
    partner, job, profiles = list_sync
    sync(job)
    segment = job.segment
    remove_members(segment, profiles[0:3])  # u0-u2 leave
    add_members(segment, profiles[10:12])  # u10, u11 join
    add_members(segment, profiles[12:13])  # u12 joins and leaves: nothing to send
    remove_members(segment, profiles[12:13])
    remove_members(segment, profiles[5:6])  # u5 leaves and comes back: nothing to send
    add_members(segment, profiles[5:6])
    before = len(partner.fake.requests)
    run = sync(job)
    assert (run.full, run.to_add, run.to_remove) == (False, 2, 3)
    assert row_statuses(run) == {
        "u0": "delivered",
        "u1": "delivered",
        "u2": "delivered",
        "u10": "delivered",
        "u11": "delivered",
    }
    assert members(partner, job) == {f"u{i}" for i in (*range(3, 10), 10, 11)}
    assert len(partner.fake.requests) - before == 2  # one add call, one remove call


def test_members_without_a_mapped_identity_are_invalid_with_the_reason(acme, partners):
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(6), anonymous={1, 2}, nobody={3}))
    dest = destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"})
    job = job_for(segment, dest, device_id_kind="")
    run = sync(job)
    assert (run.status, run.delivered, run.invalid) == (RunStatus.SUCCEEDED, 3, 3)
    invalid = DeliveryRow.objects.filter(run=run, status="invalid")
    assert {r.reason for r in invalid} == {"no user_id identity (anonymous members are not sent to this destination)"}
    # With the device id mapped as the anonymous id, anonymous members go out under it.
    job.device_id_kind = "device_id"
    job.save()
    run = sync(job, mode=RunMode.FULL)
    assert (run.delivered, run.invalid) == (5, 1)
    assert {"d1", "d2"} <= members(partner, job)
    assert run.rows.get(status="invalid").reason == "no user_id or device_id identity"


def test_rows_added_to_the_ledger_after_the_snapshot_go_to_the_next_run(list_sync):
    partner, job, profiles = list_sync
    run = start_run(job)
    plan_run(run, ListApiConnector)  # the snapshot is taken here…
    add_members(job.segment, profiles[10:12])  # …so these ledger rows belong to the next run
    execute_run(run.pk)
    run.refresh_from_db()
    job.refresh_from_db()
    assert run.delivered == 10 and job.cursor == run.snapshot_cursor
    assert job.cursor < MembershipChange.objects.filter(segment=job.segment).latest("id").id
    assert members(partner, job) == {f"u{i}" for i in range(10)}
    follow_up = sync(job)
    assert (follow_up.full, follow_up.to_add) == (False, 2)
    assert members(partner, job) == {f"u{i}" for i in range(12)}


def test_failed_rows_are_carried_into_the_next_run_and_retry_failed_rows_sends_them(list_sync, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    partner, job, profiles = list_sync
    sync(job)
    add_members(job.segment, profiles[10:14])
    partner.fake.set_faults(rate=1.0, rate_status=503, rate_headers={})
    failed = sync(job)
    assert (failed.status, failed.failed, failed.retried) == (RunStatus.FAILED, 4, 4)
    assert DeliveryRow.objects.filter(job_id=job.pk, status="failed").count() == 4
    partner.fake.set_faults(rate=0.0)
    retry = sync(job, mode=RunMode.RETRY)
    assert (retry.status, retry.carried_in, retry.delivered) == (RunStatus.SUCCEEDED, 4, 4)
    assert not DeliveryRow.objects.filter(job_id=job.pk, status="failed").exists()
    assert members(partner, job) == {f"u{i}" for i in range(14)}


def test_the_whole_batch_refused_is_bisected_to_the_bad_row(list_sync):
    partner, job, _ = list_sync
    partner.fake.reject_ids = {"u6"}  # reject_mode "request": a 400 for any call containing it
    run = sync(job)
    assert (run.status, run.delivered, run.rejected) == (RunStatus.PARTIALLY_FAILED, 9, 1)
    row = run.rows.get(user_id="u6")
    assert row.status == "rejected" and "invalid user id" in row.reason and row.partner_code == "400"


def test_our_own_byte_cap_splits_batches_before_the_partner_sees_them(list_sync, monkeypatch):
    partner, job, _ = list_sync
    monkeypatch.setattr(ListApiConnector, "limits", Limits(records_per_request=10_000, bytes_per_request=100))
    run = sync(job)
    assert run.status == RunStatus.SUCCEEDED
    assert all(r["size"] <= 100 for r in partner.fake.find("/lists/1/"))
    assert partner.fake.stats()["by_status"].get("413") is None


def test_a_long_retry_after_parks_the_run_in_the_database_and_the_dispatcher_resumes_it(
    list_sync, django_capture_on_commit_callbacks
):
    partner, job, _ = list_sync
    job.partner_state = build_connector(job).prepare()
    job.save()
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "120"}}])
    run = sync(job)
    assert run.status == RunStatus.WAITING
    assert 100 < (run.next_attempt_at - timezone.now()).total_seconds() <= 120
    assert SyncJob.objects.get(pk=job.pk).cursor is None  # the cursor waits for the run to complete
    assert dispatch_due(timezone.now()) == []  # not due yet
    with django_capture_on_commit_callbacks(execute=True):  # the task is queued on commit (eager here)
        assert dispatch_due(timezone.now() + dt.timedelta(seconds=121)) == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.delivered == 10, run.error
    assert members(partner, job) == {f"u{i}" for i in range(10)}


def test_full_resync_removes_people_the_partner_still_holds_after_a_reset_diff(list_sync):
    partner, job, profiles = list_sync
    sync(job)
    remove_members(job.segment, profiles[0:2])  # u0, u1 leave ...
    reset_diff(job)  # ... and the diff that would have told the partner is dropped
    assert members(partner, job) == {f"u{i}" for i in range(10)}
    run = sync(job, mode=RunMode.FULL)
    assert (run.full, run.to_add, run.to_remove) == (True, 8, 2)
    assert members(partner, job) == {f"u{i}" for i in range(2, 10)}
    again = sync(job, mode=RunMode.FULL)  # the removes were delivered: nobody is removed twice
    assert (again.to_add, again.to_remove) == (8, 0)


def test_webhook_users_carry_the_selected_user_properties(acme, partners):
    from audiences.models import Profile

    partner = partners("cohort_webhook")
    segment = make_segment(acme)
    profiles = make_profiles(acme, range(2))
    Profile.objects.filter(pk=profiles[0]).update(properties={"plan": "pro", "email_opt_in": True, "ssn": "x"})
    add_members(segment, profiles)
    dest = destination(
        acme, "cohort_webhook", {"url": partner.base_url + "/webhook", "user_properties": ["plan", "email_opt_in"]}
    )
    job = job_for(segment, dest)
    assert dry_run(job)["sample_requests"]["add"]["body"]["users"][0]["user_properties"] == {
        "plan": "pro",
        "email_opt_in": True,
    }
    run = sync(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    users = {u["user_id"]: u["user_properties"] for p in partner.fake.payloads for u in p["users"]}
    assert users == {"u0": {"plan": "pro", "email_opt_in": True}, "u1": {}}


def test_dry_run_shows_counts_and_a_real_sample_payload_and_sends_nothing(list_sync):
    partner, job, _ = list_sync
    preview = dry_run(job)
    assert (preview["full"], preview["to_add"], preview["to_remove"], preview["invalid"]) == (True, 10, 0, 0)
    sample = preview["sample_requests"]["add"]
    assert sample["body"]["userIds"] == ["u0", "u1", "u2"]
    assert sample["headers"]["Authorization"] == "••••••••"
    assert partner.fake.requests == [] and not DeliveryRow.objects.exists()


def test_reset_diff_moves_the_cursor_without_sending(list_sync):
    partner, job, profiles = list_sync
    sync(job)
    add_members(job.segment, profiles[10:15])
    reset_diff(job)
    run = sync(job)
    assert (run.to_add, run.to_remove) == (0, 0) and run.status == RunStatus.SUCCEEDED
    assert members(partner, job) == {f"u{i}" for i in range(10)}


def test_a_run_that_would_overlap_a_running_one_is_recorded_as_skipped(list_sync):
    _partner, job, _ = list_sync
    first = start_run(job)
    second = start_run(job)
    assert second.status == RunStatus.SKIPPED
    assert second.error == f"Skipped: run #{first.pk} is still queued; runs of one sync never overlap."
    job.next_run_at = timezone.now()
    job.cadence = "hourly"
    job.save()
    dispatch_due(timezone.now())
    assert job.runs.filter(status=RunStatus.SKIPPED).count() == 2
    execute_run(first.pk)
    assert job.runs.get(pk=first.pk).status == RunStatus.SUCCEEDED


def test_partner_call_log_keeps_the_last_n_calls_without_secrets(list_sync, settings):
    settings.DELIVERY_CALL_LOG_SIZE = 3
    _partner, job, _ = list_sync
    sync(job)
    calls = list(PartnerCall.objects.filter(destination=job.destination))
    assert len(calls) == 3
    assert all(
        "test-api-key" not in (c.request_summary + c.response_summary + c.response_excerpt + c.url) for c in calls
    )
    assert calls[0].request_summary.startswith("add ") and calls[0].status_code == 200


def test_the_demo_sync_delivers_to_the_run_commands_list_sandbox(acme, partners, monkeypatch):
    import io

    from demo.delivery import populate_demo
    from demo.servers import _PARTNER_OPTIONS
    from integrations.delivery.models import Destination, Health

    partner = partners("list_api", **_PARTNER_OPTIONS["list_api"])  # as `dev.py run` starts it
    monkeypatch.setenv("SANDBOX_LIST_API_URL", partner.base_url)
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(5)))
    dest = destination(
        acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "stale"}, name="Sandbox list partner"
    )
    Destination.objects.filter(pk=dest.pk).update(health=Health.DISABLED)  # left so by an older demo
    populate_demo(acme, {}, io.StringIO())
    job = SyncJob.objects.get(segment=segment)
    run = job.runs.get()
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.delivered == 5, run.error
    assert Destination.objects.get(pk=dest.pk).health == Health.HEALTHY
    assert members(partner, job) == {f"u{i}" for i in range(5)}
    assert job.cadence == "hourly" and job.next_run_at is not None  # the scheduler picks it up again
