"""Syncs: the "Import Cohorts from Amplitude" wizard (segment → destination → API target → sync type),
the sync page with its actions, live progress, run history and per-row failures.

Actions call the same functions (integrations/delivery/actions.py) as the management API (integrations/delivery/api.py), and the
wizard validates through SyncJobSerializer, so the console adds no rules of its own.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from audiences.models import DEVICE_KINDS, KNOWN_KINDS, Segment
from config.params import int_param, is_plain_int
from console import timefmt
from console.access import action_required, member_required
from console.paging import keyset_page
from integrations.connectors.base import Arrival, SegmentInfo
from integrations.delivery import actions, planning
from integrations.delivery.api import SyncJobSerializer
from integrations.delivery.models import (
    ACTIVE_STATUSES,
    Cadence,
    DeliveryRow,
    Destination,
    RowStatus,
    RunMode,
    RunStatus,
    SyncJob,
    SyncRun,
)

TIMEZONES = sorted(zoneinfo.available_timezones())
FAILURE_STATUSES = (RowStatus.INVALID, RowStatus.REJECTED, RowStatus.FAILED)
FAILURES_PER_PAGE = 50
RUNS_SHOWN = 30
SOON = dt.timedelta(minutes=2)


def api_target(segment: Segment, destination: Destination) -> str:
    """In words: what the destination's connector will create or use at the partner for this segment."""
    return destination.connector_class.describe_target(destination.config or {}, SegmentInfo.of(segment))


def _when(moment, tz_name: str) -> str:
    """A scheduled moment in the workspace's zone, and in the job's own when that differs, labelled."""
    if moment is None:
        return "when you start it"
    said = f"at {timefmt.when(moment)}"
    if tz_name and tz_name != timefmt.zone_name():
        said += f" ({timefmt.when(moment, tz_name=tz_name)})"
    return said


def _kind(data, field: str, default: str) -> str:
    """The identity kind chosen for `field`; a profile property typed next to it wins (property:<name>)."""
    prop = (data.get(f"{field}_property") or "").strip()
    return f"property:{prop}" if prop else data.get(f"{field}_kind", default)


@action_required
def sync_new(request: HttpRequest) -> HttpResponse:
    """One page, four steps: each choice is a query parameter, so every step is a plain link (no JS)."""
    segments = Segment.objects.for_workspace(request.workspace)
    destinations = Destination.objects.for_workspace(request.workspace)
    source = request.POST if request.method == "POST" else request.GET
    segment = segments.filter(pk=int_param(source, "segment")).first()
    destination = destinations.filter(pk=int_param(source, "destination")).first()
    errors: dict = {}
    if request.method == "POST" and segment and destination:
        serializer = SyncJobSerializer(
            data={
                "segment": segment.pk,
                "destination": destination.pk,
                "cadence": request.POST.get("cadence", ""),
                "time_of_day": request.POST.get("time_of_day") or None,
                "timezone": request.POST.get("timezone", "UTC"),
                "user_id_kind": _kind(request.POST, "user_id", "user_id"),
                "device_id_kind": _kind(request.POST, "device_id", ""),
            },
            context={"request": request},
        )
        if serializer.is_valid():
            job = serializer.save(workspace=request.workspace)
            run = actions.start_new_job(job)
            saved = f"Sync of “{segment.name}” to “{destination.name}” saved"
            if run is None:
                messages.success(request, f"{saved}; its first run starts {_when(job.next_run_at, job.timezone)}.")
            elif run.status == RunStatus.QUEUED:
                messages.success(request, f"{saved}; run #{run.pk} is queued and starts within a minute.")
            else:
                messages.error(request, f"{saved}, but its first run could not start. {run.error}")
            return redirect("console:sync", pk=job.pk)
        errors = {key: [str(m) for m in value] for key, value in serializer.errors.items()}
        if "non_field_errors" in errors:  # the unique (segment, destination) constraint
            errors["non_field_errors"] = ["This segment already syncs to this destination."]
    connector_cls = destination.connector_class if destination else None
    context = {
        "segments": segments.order_by("name")[:500],
        "destinations": destinations.order_by("name"),
        "segment": segment,
        "destination": destination,
        "existing": SyncJob.objects.filter(segment=segment, destination=destination).first()
        if segment and destination
        else None,
        "target": api_target(segment, destination) if segment and destination else "",
        "accepts_device": bool(connector_cls and connector_cls.accepts_device_id),
        "user_kinds": sorted(KNOWN_KINDS),
        "device_kinds": sorted(DEVICE_KINDS),
        "cadences": Cadence.choices,
        "starts_at_once": [str(c) for c in actions.STARTS_AT_ONCE],
        "timezones": TIMEZONES,
        "values": {
            "cadence": source.get("cadence", Cadence.ONE_TIME),
            "time_of_day": source.get("time_of_day", ""),
            "timezone": source.get("timezone", request.workspace.timezone),
            "user_id_kind": source.get("user_id_kind", "user_id"),
            "device_id_kind": source.get("device_id_kind", "device_id"),
            "user_id_property": source.get("user_id_property", ""),
            "device_id_property": source.get("device_id_property", ""),
        },
        "errors": errors,
    }
    return render(request, "console/syncs/new.html", context, status=400 if errors else 200)


@member_required
def sync_list(request) -> HttpResponse:
    jobs = (
        SyncJob.objects.for_workspace(request.workspace)
        .select_related("segment", "destination")
        .order_by("segment__name", "destination__name")
    )
    return render(request, "console/syncs/list.html", {"jobs": jobs})


def _job(request, pk) -> SyncJob:
    return get_object_or_404(
        SyncJob.objects.for_workspace(request.workspace).select_related("segment", "destination"), pk=pk
    )


def progress_of(run: SyncRun | None) -> dict:
    """Rows done of rows to do, rate and time left, from the run's own counters (no COUNT queries)."""
    if run is None:
        return {"run": None, "active": False}
    active = run.status in ACTIVE_STATUSES
    elapsed = ((run.finished_at or timezone.now()) - run.started_at).total_seconds() if run.started_at else 0
    rate = run.rows_done / elapsed if elapsed > 0 else 0
    left = (run.rows_total - run.rows_done) / rate if active and rate > 0 else None
    return {
        "run": run,
        "active": active,
        # Succeeded with nothing to send: the partner already had every change.
        "nothing_changed": run.status == RunStatus.SUCCEEDED and run.rows_total == 0,
        "rate": round(rate, 1),
        "seconds_left": round(left) if left is not None else None,
        "percent": round(100 * run.rows_done / run.rows_total) if run.rows_total else (100 if not active else 0),
    }


def arrival_of(job: SyncJob) -> Arrival | None:
    """Where the data landed at the partner and how to use it there, once a run delivered any (the
    connector says it: Connector.describe_arrival)."""
    if not SyncRun.objects.filter(job_id=job.pk, delivered__gt=0).exists():
        return None
    destination = job.destination
    return destination.connector_class.describe_arrival(
        destination.config or {},
        SegmentInfo.of(job.segment),
        partner_state=job.partner_state or {},
        auth_fields=destination.authorization.fields if destination.authorization_id else {},
    )


def live_state(job: SyncJob) -> dict:
    """What the live part of the sync page shows, and how often it asks again: every 2 s while a run
    is queued or running, every 10 s when a scheduled run is due within two minutes, every minute
    while one is scheduled later, not at all when none is."""
    run = SyncRun.objects.filter(job=job).order_by("-id").first()
    progress = progress_of(run)
    if progress["active"]:
        poll = "2s"
    elif job.next_run_at is None or job.paused:
        poll = ""
    elif job.next_run_at <= timezone.now() + SOON:
        poll = "10s"
    else:
        poll = "60s"
    return {
        "progress": progress,
        "arrival": arrival_of(job),
        "poll": poll,
        "seen": f"{run.pk}:{run.status}" if run else "none",
    }


def _failures(request, job: SyncJob) -> dict:
    rows = DeliveryRow.objects.filter(job_id=job.pk, status__in=FAILURE_STATUSES)
    q = request.GET.get("q", "").strip()
    if q:
        match = Q(user_id=q) | Q(device_id=q)
        if is_plain_int(q):
            match |= Q(profile_id=int(q))
        rows = rows.filter(match)
    wanted = request.GET.get("status", "")
    if wanted in FAILURE_STATUSES:
        rows = rows.filter(status=wanted)
    before = int_param(request.GET, "before")
    if before:
        rows = rows.filter(id__lt=before)  # keyset pagination: fast at any depth, no OFFSET, no COUNT
    page = list(rows.order_by("-id")[: FAILURES_PER_PAGE + 1])
    more = len(page) > FAILURES_PER_PAGE
    page = page[:FAILURES_PER_PAGE]
    return {
        "failures": page,
        "q": q,
        "status_filter": wanted,
        "next_before": page[-1].id if more else None,
        "failure_statuses": [(s.value, s.label) for s in FAILURE_STATUSES],
    }


@member_required
def sync_detail(request, pk) -> HttpResponse:
    return _render_detail(request, _job(request, pk))


def _render_detail(request, job: SyncJob, dry: dict | None = None):
    context = {
        "job": job,
        "runs": keyset_page(SyncRun.objects.filter(job=job), ("-id",), request.GET, prefix="runs_", size=RUNS_SHOWN),
        "target": api_target(job.segment, job.destination),
        "dry": dry,
        # Before a run has finished there is nothing to say about delivered or failed rows.
        "finished_once": job.last_run_at is not None,
        **live_state(job),
        **_failures(request, job),
    }
    return render(request, "console/syncs/detail.html", context)


@member_required
def sync_progress(request, pk) -> HttpResponse:
    """The live part of the sync page (htmx polls it). When the latest run is another one, or in
    another state, than the page last saw, the answer triggers `sync-run-changed`: the run history
    and the failures reload themselves."""
    job = _job(request, pk)
    context = {"job": job, **live_state(job)}
    response = render(request, "console/syncs/_progress.html", context)
    seen = request.GET.get("seen", "")
    if seen and seen != context["seen"]:
        response["HX-Trigger"] = "sync-run-changed"
    return response


RUN_ACTIONS = {"sync-now": RunMode.AUTO, "full-resync": RunMode.FULL, "retry-failed": RunMode.RETRY}


@action_required
def sync_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job = _job(request, pk)
    if request.method != "POST":
        return redirect("console:sync", pk=pk)
    if action in RUN_ACTIONS:
        run = actions.run_now(job, trigger="manual", mode=RUN_ACTIONS[action])  # eager Celery: run in this request
        if run.status == RunStatus.QUEUED:
            messages.success(request, f"Run #{run.pk} ({run.get_mode_display().lower()}) started.")
        else:
            messages.error(request, run.error)
    elif action == "reset-diff":
        try:
            actions.reset_diff(job)
            messages.success(request, "The diff is reset: the next run sends only changes from now on.")
        except ValueError as exc:
            messages.error(request, str(exc))
    elif action == "pause":
        actions.pause(job)
        messages.success(request, "Paused: scheduled runs stop until you resume.")
    elif action == "resume":
        actions.resume(job)
        messages.success(request, "Resumed.")
    elif action == "dry-run":
        mode = request.POST.get("mode", RunMode.AUTO)
        return _render_detail(
            request, job, dry=planning.dry_run(job, mode=mode if mode in RunMode.values else RunMode.AUTO)
        )
    else:
        raise Http404("unknown action")
    return redirect("console:sync", pk=pk)
