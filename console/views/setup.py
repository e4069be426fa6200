"""The first-run path: the dashboard's checklist of a new workspace, and setup pages for members who
may not touch credentials (read-only, with a one-click request to the owners and ops).

The checklist reads real state, so each step ticks itself off when it is done, whoever did it and
however (console, API, admin, a push from Amplitude).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from audiences.models import Segment
from console.access import action_required, credentials_required
from console.asking import TOPIC_PAGES, kind_label
from console.views.settings import safe_next
from integrations.delivery.models import Destination, SyncJob, SyncRun
from integrations.models import ApiKey
from integrations.sources.models import AmplitudeProject
from workspaces import setup_requests
from workspaces.models import SetupRequest, SetupTopic


@dataclass(frozen=True)
class Step:
    title: str
    done: bool
    text: str  # what to do, or what was done
    url: str
    action: str  # the link's words


def checklist(workspace) -> list[Step]:
    """The five steps from a new workspace to seeing a segment arrive at a partner, from real state."""
    connected = (
        AmplitudeProject.objects.filter(workspace=workspace).exists()
        or ApiKey.objects.for_workspace(workspace).active().filter(scope="inbound").exists()
    )
    segment = Segment.objects.filter(workspace=workspace).order_by("-id").first()
    has_destination = Destination.objects.filter(workspace=workspace).exists()
    job = SyncJob.objects.filter(workspace=workspace).order_by("-id").first()
    delivered = (
        SyncRun.objects.filter(workspace=workspace, delivered__gt=0).select_related("job").order_by("-id").first()
    )
    return [
        Step(
            "Connect Amplitude or copy the push settings",
            connected,
            "Pull cohorts with the project's API key and secret, or let Amplitude push them here with an inbound key.",
            reverse("console:sources") if not connected else reverse("console:amplitude-setup"),
            "Connect Amplitude" if not connected else "See the push settings",
        ),
        Step(
            "Import or receive a cohort",
            segment is not None,
            f"“{segment.name}” is here." if segment else "Import a cohort from a source, or push one from Amplitude.",
            reverse("console:segment", args=[segment.pk]) if segment else reverse("console:sources"),
            "Open the segment" if segment else "Import a cohort",
        ),
        Step(
            "Add a destination",
            has_destination,
            "A partner account (CleverTap, a list API, …) to send segments to.",
            reverse("console:destinations"),
            "Destinations" if has_destination else "Add a destination",
        ),
        Step(
            "Sync a segment to it",
            job is not None,
            f"“{job.segment.name}” goes to “{job.destination.name}”." if job else "Pick a segment and a destination.",
            reverse("console:sync", args=[job.pk]) if job else reverse("console:sync-new"),
            "Open the sync" if job else "New sync",
        ),
        Step(
            "See it arrive",
            delivered is not None,
            f"{delivered.delivered} people reached “{delivered.job.destination.name}”: the sync page says where they landed."
            if delivered
            else "Run the sync and watch it reach the partner; its page says where the data landed.",
            reverse("console:sync", args=[(delivered.job_id if delivered else job.pk)])
            if (delivered or job)
            else reverse("console:syncs"),
            "Where it landed" if delivered else "Watch the sync",
        ),
    ]


# ---- asking the owners and ops (console.asking) ---------------------------------------------------


@action_required
@require_POST
def ask_setup(request: HttpRequest) -> HttpResponse:
    back = safe_next(request, request.POST.get("next"))
    if request.membership.can_manage_credentials:
        return redirect(back)  # owners and ops set it up themselves
    topic = request.POST.get("topic", "")
    if topic not in TOPIC_PAGES:
        messages.error(request, "Nothing to ask for.")
        return redirect(back)
    kind = request.POST.get("kind", "")
    detail = kind_label(kind) if topic == SetupTopic.DESTINATION else ""
    path = reverse("console:destination-new", args=[kind]) if detail else reverse(TOPIC_PAGES[topic])
    asked = setup_requests.ask(
        request.membership, topic, detail=detail, path=path, page_url=request.build_absolute_uri(path)
    )
    (messages.success if asked.request else messages.info)(request, asked.message)
    return redirect(back)


@credentials_required
@require_POST
def setup_request_done(request: HttpRequest, pk: int) -> HttpResponse:
    setup_request = get_object_or_404(SetupRequest.objects.filter(workspace=request.workspace), pk=pk)
    setup_requests.mark_done(setup_request, request.user)
    messages.success(request, f"Marked done: {setup_request.what}.")
    return redirect(safe_next(request, request.POST.get("next")))
