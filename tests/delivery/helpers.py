"""Building blocks for delivery and connector tests: members, destinations, jobs, running sandboxes."""

from __future__ import annotations

from contextlib import ExitStack

from django.db import connection

from audiences.ledger import Cause, apply_changes
from audiences.models import Segment
from integrations.delivery.actions import start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import Destination, RunMode, SyncJob, SyncRun
from integrations.models import Authorization
from integrations.sandbox.partners import running_partner

MANUAL = Cause("manual", "test")


def make_segment(workspace, name: str = "Cart Drop off", external_id: str = "1638361188") -> Segment:
    return Segment.objects.create(workspace=workspace, name=name, type="partner_amplitude", external_id=external_id)


def make_profiles(
    workspace, ids: range, *, anonymous: set[int] = frozenset(), nobody: set[int] = frozenset()
) -> list[int]:
    """Profiles with user_id u<i> and device_id d<i> (anonymous: device only; nobody: no identity)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audiences_profile (workspace_id, properties, event_counts, created_at, updated_at) "
            "SELECT %s, '{}', '{}', now(), now() FROM generate_series(1, %s) RETURNING id",
            [workspace.pk, len(ids)],
        )
        profile_ids = sorted(row[0] for row in cursor.fetchall())
        users = [(p, f"u{i}") for p, i in zip(profile_ids, ids, strict=True) if i not in anonymous and i not in nobody]
        devices = [(p, f"d{i}") for p, i in zip(profile_ids, ids, strict=True) if i not in nobody]
        for kind, pairs in (("user_id", users), ("device_id", devices)):
            if pairs:
                cursor.execute(
                    "INSERT INTO audiences_identity (workspace_id, profile_id, kind, value, source, created_at) "
                    "SELECT %s, p, %s, v, 'test', now() FROM unnest(%s::bigint[], %s::text[]) AS t(p, v)",
                    [workspace.pk, kind, [p for p, _ in pairs], [v for _, v in pairs]],
                )
    return profile_ids


def add_members(segment: Segment, profile_ids: list[int]) -> None:
    apply_changes(segment, add=profile_ids, cause=MANUAL)


def remove_members(segment: Segment, profile_ids: list[int]) -> None:
    apply_changes(segment, remove=profile_ids, cause=MANUAL)


def destination(
    workspace,
    kind: str,
    config: dict,
    *,
    secrets: dict | None = None,
    fields: dict | None = None,
    name: str | None = None,
) -> Destination:
    auth = None
    if secrets is not None:
        auth = Authorization(
            workspace=workspace,
            provider=kind,
            label=f"{name or kind} credentials",
            fields=fields or {},
        )
        auth.set_secrets(secrets)
        auth.save()
    config = Destination(kind=kind).connector_class.validate_config(config)
    return Destination.objects.create(
        workspace=workspace, kind=kind, name=name or kind, config=config, authorization=auth
    )


def job_for(segment: Segment, dest: Destination, **fields) -> SyncJob:
    """A sync tests can run again and again: hourly (a one-time sync runs once), and with no next_run_at
    the scheduler never starts it by itself."""
    return SyncJob.objects.create(
        workspace=segment.workspace,
        segment=segment,
        destination=dest,
        cadence=fields.pop("cadence", "hourly"),
        **fields,
    )


def sync(job: SyncJob, mode: str = RunMode.AUTO) -> SyncRun:
    run = start_run(job, trigger="test", mode=mode)
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def row_statuses(run: SyncRun) -> dict[str, str]:
    """partner id (user id or device id) → row status."""
    return {(r.user_id or r.device_id or f"p{r.profile_id}"): r.status for r in run.rows.all()}


class Partners:
    """Start sandbox partners for one test; all stopped at teardown."""

    def __init__(self) -> None:
        self.stack = ExitStack()

    def __call__(self, kind: str, **options):
        return self.stack.enter_context(running_partner(kind, **options))

    def close(self) -> None:
        self.stack.close()
