"""The dashboard: the workspace at a glance, each number linking to the page that explains it."""

import json
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from audiences.models import Profile, Segment
from console.access import member_required
from console.views.setup import checklist
from integrations.delivery.models import Destination, SyncRun
from integrations.inbound.models import InboundBatch
from integrations.models import ApiKey, Authorization
from integrations.sources.models import AmplitudeProject, ImportRun
from workspaces.setup_requests import open_requests

PROBLEMS = 8


# Above this many people (the planner's estimate) the dashboard shows the estimate: an exact count
# of 10M profiles takes over a second even on the (workspace) index (bench/scale), and "about 10.0
# million" is what the tile needs. Below it the count is exact (a million takes ~0.1 s).
EXACT_COUNT_UP_TO = 1_000_000


def profile_count(workspace) -> tuple[int, bool]:
    """(people in the workspace, whether that is an estimate), cached for a minute."""
    key = f"dashboard:profiles:{workspace.pk}"
    cached = cache.get(key)
    if cached is None:
        with connection.cursor() as cursor:
            # The planner's row estimate for this workspace: from the table statistics that
            # autovacuum keeps, read without touching a single row.
            cursor.execute(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM audiences_profile WHERE workspace_id = %s", [workspace.pk]
            )
            plan = cursor.fetchone()[0]
            estimate = int((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])
        if estimate > EXACT_COUNT_UP_TO:
            cached = (estimate, True)
        else:
            cached = (Profile.objects.filter(workspace=workspace).count(), False)
        cache.set(key, cached, 60)
    return tuple(cached)


@member_required
def dashboard(request) -> HttpResponse:
    workspace = request.workspace
    since = timezone.now() - timedelta(hours=24)
    runs = {"succeeded": 0, "failed": 0, "skipped": 0, "running": 0}
    for model in (SyncRun, ImportRun):
        for row in (
            model.objects.filter(workspace=workspace, created_at__gte=since).values("status").annotate(n=Count("id"))
        ):
            status = row["status"]
            bucket = "failed" if status in {"failed", "partially_failed"} else status
            bucket = bucket if bucket in runs else "running"
            runs[bucket] += row["n"]
    health = dict(Destination.objects.filter(workspace=workspace).values_list("health").annotate(n=Count("id")))
    problems = []
    for destination in (
        Destination.objects.filter(workspace=workspace)
        .exclude(health="healthy")
        .order_by("-health_changed_at")[:PROBLEMS]
    ):
        problems.append(
            (
                destination.health_changed_at,
                (
                    f"Destination “{destination.name}” is {destination.health}: "
                    f"{destination.last_error or 'no error recorded'}"
                ),
                f"/destinations/{destination.pk}/",
            )
        )
    for run in (
        SyncRun.objects.filter(workspace=workspace, status__in=["failed", "partially_failed"])
        .select_related("job__segment", "job__destination")
        .order_by("-id")[:PROBLEMS]
    ):
        problems.append(
            (
                run.finished_at or run.created_at,
                (
                    f"Sync of “{run.job.segment.name}” to “{run.job.destination.name}” "
                    f"{run.get_status_display().lower()}: {run.error or f'{run.rejected} rejected, {run.invalid} invalid'}"
                ),
                f"/syncs/{run.job_id}/",
            )
        )
    for run in ImportRun.objects.filter(workspace=workspace, status="failed").order_by("-id")[:PROBLEMS]:
        problems.append(
            (run.finished_at or run.created_at, f"Import run #{run.pk} failed: {run.error[:200]}", "/sources/")
        )
    for batch in InboundBatch.objects.filter(workspace=workspace, status="failed").order_by("-id")[:PROBLEMS]:
        problems.append(
            (
                batch.received_at,
                (f"Inbound batch #{batch.pk} ({batch.endpoint}) could not be applied: {batch.last_error[:200]}"),
                f"/admin/inbound/inboundbatch/{batch.pk}/change/",
            )
        )
    problems.sort(key=lambda item: item[0] or since, reverse=True)
    steps = checklist(workspace)
    people, people_estimated = profile_count(workspace)
    context = {
        "steps": steps,
        "steps_done": sum(step.done for step in steps),
        "first_run": not all(step.done for step in steps),
        "setup_requests": open_requests(workspace.pk) if request.membership.can_manage_credentials else [],
        "segment_count": Segment.objects.filter(workspace=workspace).count(),
        "member_total": sum(Segment.objects.filter(workspace=workspace).values_list("size", flat=True)),
        "profile_count": people,
        "profile_count_estimated": people_estimated,
        "health": {state: health.get(state, 0) for state in ("healthy", "degraded", "disabled")},
        "runs": runs,
        "backlog": InboundBatch.objects.filter(workspace=workspace, status="accepted").count(),
        "problems": problems[:PROBLEMS],
        "is_empty": not (
            Segment.objects.filter(workspace=workspace).exists()
            or AmplitudeProject.objects.filter(workspace=workspace).exists()
            or ApiKey.objects.filter(workspace=workspace, scope="inbound", revoked_at__isnull=True).exists()
            or Authorization.objects.filter(workspace=workspace).exists()
        ),
        "top_segments": Segment.objects.filter(workspace=workspace).order_by("-size")[:5],
        "recent_pushes": InboundBatch.objects.filter(workspace=workspace)
        .filter(~Q(status="accepted"))
        .order_by("-id")[:5],
    }
    return render(request, "console/dashboard.html", context)
