"""The dashboard: the workspace at a glance, each number linking to the page that explains it."""

from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Q
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


def profile_count(workspace) -> int:
    """Counting a million-row table per page view is wasteful; a minute-old number is fine here."""
    key = f"dashboard:profiles:{workspace.pk}"
    count = cache.get(key)
    if count is None:
        count = Profile.objects.filter(workspace=workspace).count()
        cache.set(key, count, 60)
    return count


@member_required
def dashboard(request):
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
    context = {
        "steps": steps,
        "steps_done": sum(step.done for step in steps),
        "first_run": not all(step.done for step in steps),
        "setup_requests": open_requests(workspace.pk) if request.membership.can_manage_credentials else [],
        "segment_count": Segment.objects.filter(workspace=workspace).count(),
        "member_total": sum(Segment.objects.filter(workspace=workspace).values_list("size", flat=True)),
        "profile_count": profile_count(workspace),
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
