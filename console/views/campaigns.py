"""Campaigns: the page that lists what engages the synced segments — the CleverTap campaigns
(campaigns app) and the partners' own campaigns (Kahuna's adaptive campaigns and their exports) —
the create flow in the order of CleverTap's own (channel → who → what → when → reach → launch), the
same form to edit a draft, and a campaign's page: its live count, CleverTap's report, its
enrollments, stop.

Every rule lives in the campaigns app: the form validates through campaigns.validation (the same
refusals as the API and the admin), and saving, launching, estimating and stopping call
campaigns.service.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from audiences.models import Identity, Segment
from campaigns import service
from campaigns.models import Campaign, Enrollment, Kind, PartnerState, Reentry, Repeat, Status, When
from campaigns.validation import channel_choices, validate_campaign
from config.params import is_plain_int
from config.safe_json import string_problem
from console.access import action_required, member_required
from console.paging import keyset_page
from integrations.connectors.registry import campaign_sections
from integrations.delivery.models import Destination

CAMPAIGNS_PAGE = 50
LAUNCHES_SHOWN = 10
LAUNCH_IN_FLIGHT = (PartnerState.PENDING, PartnerState.SENDING, PartnerState.UNKNOWN)
ENROLLMENTS_PAGE = 50
CONTENT_FIELDS = ("title", "subject", "body")
ACTIVE = (Status.SCHEDULED, Status.RUNNING)
# What the list counts as sent and failed, per enrollment status (a past-behaviour campaign's people
# are "in CleverTap's campaign audience": CleverTap itself messages them).
SENT = ("sent", "in_campaign")


def _campaigns(request):
    return Campaign.objects.for_workspace(request.workspace).select_related("segment", "destination")


def _campaign(request, pk) -> Campaign:
    return get_object_or_404(_campaigns(request), pk=pk)


def enrollment_counts(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per campaign: enrolled, and how many are sent, failed, waiting (pending), sending, unknown and
    skipped, in one grouped query for a whole page of campaigns."""
    blank = {"enrolled": 0, "sent": 0, "failed": 0, "pending": 0, "sending": 0, "unknown": 0, "skipped": 0}
    counts = {pk: dict(blank) for pk in campaign_ids}
    rows = (
        Enrollment.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        figures = counts[row["campaign_id"]]
        figures["enrolled"] += row["n"]
        bucket = "sent" if row["status"] in SENT else row["status"]
        if bucket in figures:
            figures[bucket] += row["n"]
    return counts


@member_required
def campaign_list(request) -> HttpResponse:
    campaigns = _campaigns(request)
    filters = {"status": request.GET.get("status", ""), "kind": request.GET.get("kind", "")}
    if filters["status"] in Status.values:
        campaigns = campaigns.filter(status=filters["status"])
    if filters["kind"] in Kind.values:
        campaigns = campaigns.filter(kind=filters["kind"])
    page = keyset_page(campaigns, ("-id",), request.GET, prefix="c_", size=CAMPAIGNS_PAGE)
    counts = enrollment_counts([campaign.pk for campaign in page.rows])
    return render(
        request,
        "console/campaigns/list.html",
        {
            "rows": [(campaign, counts[campaign.pk]) for campaign in page.rows],
            "page": page,
            "filters": filters,
            "statuses": Status.choices,
            "kinds": Kind.choices,
            "partner_sections": campaign_sections(request.workspace),
        },
    )


# ---- the create flow ------------------------------------------------------------------------------


def _send_at(raw: str, tz) -> dt.datetime | None | str:
    """A datetime-local value read in the workspace's zone; "" when blank, the raw text when unreadable."""
    if not raw:
        return None
    try:
        return timezone.make_aware(dt.datetime.fromisoformat(raw), tz)
    except ValueError:
        return raw


def _chosen(queryset, raw: str) -> Segment | Destination | None:
    """The row a select chose, None when blank, unreadable or not among `queryset` (the form then says
    to choose one, with everything typed kept)."""
    return queryset.filter(pk=int(raw)).first() if is_plain_int(raw) else None


def _form_values(post, workspace) -> tuple[dict, dict]:
    """(the model fields posted, the raw values to show again)."""
    raw = {
        name: post.get(name, "").strip()
        for name in ("name", "channel", "kind", "segment", "destination", "when", "send_at", "repeat", "reentry")
    }
    raw.update({f"content_{name}": post.get(f"content_{name}", "") for name in CONTENT_FIELDS})
    segment = _chosen(Segment.objects.for_workspace(workspace), raw["segment"])
    destination = _chosen(Destination.objects.for_workspace(workspace).filter(kind="clevertap"), raw["destination"])
    content = {name: raw[f"content_{name}"].strip() for name in CONTENT_FIELDS if raw[f"content_{name}"].strip()}
    fields = {
        "name": raw["name"],
        "channel": raw["channel"],
        "kind": raw["kind"],
        "segment": segment,
        "destination": destination,
        "content": content,
        "when": raw["when"] or When.NOW,
        "send_at": _send_at(raw["send_at"], workspace.tz),
        "repeat": raw["repeat"] or Repeat.ONCE,
        "reentry": raw["reentry"] or Reentry.NEVER,
    }
    return fields, raw


def _form_errors(fields: dict, workspace, *, campaign: Campaign | None = None) -> dict[str, list[str]]:
    """The shared validator's refusals plus the form's own (blank or unreadable fields); `campaign` is
    the draft being edited, whose own name is no clash."""
    errors = validate_campaign(fields, workspace=workspace)
    if not fields["channel"]:
        errors["channel"] = ["Choose the messaging channel."]
    if not fields["name"]:
        errors.setdefault("name", []).append("Give the campaign a name (CleverTap shows it too).")
    elif string_problem(fields["name"]):
        errors.setdefault("name", []).append(string_problem(fields["name"]))
    elif (
        Campaign.objects.filter(workspace=workspace, name=fields["name"])
        .exclude(pk=getattr(campaign, "pk", None))
        .exists()
    ):
        errors.setdefault("name", []).append("Another campaign of this workspace has this name.")
    if fields["segment"] is None:
        errors.setdefault("segment", []).append("Choose the segment (the audience).")
    if fields["destination"] is None:
        errors.setdefault("destination", []).append("Choose the CleverTap destination the segment syncs to.")
    if isinstance(fields["send_at"], str):
        errors["send_at"] = ["Give the date and time as YYYY-MM-DD HH:MM."]
    return errors


@action_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    """One form in CleverTap's order: 1 channel, 2 who (past or live behaviour, the segment), 3 what,
    4 when. Saving makes a draft and asks CleverTap for its reach; the draft's page shows the reach
    (step 5) and launches it (step 6)."""
    workspace = request.workspace
    errors: dict[str, list[str]] = {}
    values: dict = {"kind": request.GET.get("kind", Kind.PAST), "channel": request.GET.get("channel", "")}
    if request.method == "POST":
        fields, values = _form_values(request.POST, workspace)
        errors = _form_errors(fields, workspace)
        if not errors:
            try:
                campaign = service.create_campaign(workspace, user=request.user, **fields)
            except service.CampaignInvalid as exc:
                errors = getattr(exc, "errors", None) or {"name": [str(exc)]}
            else:
                _estimate(request, campaign)
                return redirect("console:campaign", pk=campaign.pk)
    context = _form_context(workspace, values, errors)
    return render(request, "console/campaigns/new.html", context, status=400 if errors else 200)


def _form_context(workspace, values: dict, errors: dict, campaign: Campaign | None = None) -> dict:
    """What the campaign form shows (new and edit): the choices, the values, the refusals."""
    segments = list(Segment.objects.for_workspace(workspace).order_by("name")[:500])
    if campaign is not None and campaign.segment not in segments:
        segments.append(campaign.segment)  # the draft's own segment is always a choice
    destinations = Destination.objects.for_workspace(workspace).filter(kind="clevertap").order_by("name")
    if not values.get("destination") and destinations:
        values["destination"] = str(destinations[0].pk)
    return {
        "campaign": campaign,
        "channels": channel_choices(),
        "kinds": Kind.choices,
        "segments": segments,
        "destinations": destinations,
        "whens": When.choices,
        "repeats": Repeat.choices,
        "reentries": Reentry.choices,
        "values": values,
        "errors": errors,
        "tz": workspace.timezone,
    }


def _draft_values(campaign: Campaign) -> dict:
    """The form's values for a saved draft, as the form posts them (send_at in the workspace's zone)."""
    tz = campaign.workspace.tz
    values = {
        "name": campaign.name,
        "channel": campaign.channel,
        "kind": campaign.kind,
        "segment": str(campaign.segment_id),
        "destination": str(campaign.destination_id),
        "when": campaign.when,
        "send_at": campaign.send_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if campaign.send_at else "",
        "repeat": campaign.repeat,
        "reentry": campaign.reentry,
    }
    content = campaign.content if isinstance(campaign.content, dict) else {}
    values.update({f"content_{name}": str(content.get(name) or "") for name in CONTENT_FIELDS})
    return values


@action_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The create form, filled with a draft's values; saving goes through service.update_campaign (the
    API's update: the same validation, only while a draft, the reach cleared when the audience
    changes, and then estimated again as the create flow does)."""
    campaign = _campaign(request, pk)
    if not request.membership.can_act:
        reason = "Viewers can read campaigns; a marketer, ops or an owner edits them."
        return render(request, "console/forbidden.html", {"reason": reason}, status=403)
    if campaign.status != Status.DRAFT:
        messages.error(request, _not_a_draft(campaign))
        return redirect("console:campaign", pk=campaign.pk)
    workspace = request.workspace
    errors: dict[str, list[str]] = {}
    values = _draft_values(campaign)
    if request.method == "POST":
        fields, values = _form_values(request.POST, workspace)
        errors = _form_errors(fields, workspace, campaign=campaign)
        if not errors:
            try:
                campaign = service.update_campaign(campaign, **fields)
            except service.CampaignInvalid as exc:
                errors = exc.errors
            except service.CampaignRefused:  # launched between the check above and the save
                campaign.refresh_from_db()
                messages.error(request, _not_a_draft(campaign))
                return redirect("console:campaign", pk=campaign.pk)
            else:
                messages.success(request, f"Saved the changes to “{campaign.name}”.")
                if campaign.kind == Kind.PAST and campaign.reach is None:
                    _estimate(request, campaign)
                return redirect("console:campaign", pk=campaign.pk)
    context = _form_context(workspace, values, errors, campaign)
    with timezone.override(workspace.tz):
        return render(request, "console/campaigns/edit.html", context, status=400 if errors else 200)


def _not_a_draft(campaign: Campaign) -> str:
    then = "Stop it and create" if campaign.status in ACTIVE else "Create"
    return (
        f"“{campaign.name}” is {campaign.get_status_display().lower()} now, so it can no longer be edited: "
        f"only a draft can be changed. {then} a new campaign to send something else."
    )


def _estimate(request, campaign: Campaign) -> None:
    result = service.estimate(campaign)
    if result.reach is None and campaign.kind == Kind.LIVE:
        messages.info(request, result.message)  # a live campaign has no estimate: it is not a refusal
    elif result.reach is None:
        messages.error(request, f"CleverTap gave no reach estimate: {result.message}")
    else:
        messages.success(request, f"CleverTap estimates a reach of {result.reach:,} people. {result.message}".strip())


# ---- a campaign's page ------------------------------------------------------------------------------


def _local(occurrence: str, tz) -> dt.datetime | str:
    try:
        return dt.datetime.fromisoformat(occurrence).replace(tzinfo=dt.UTC).astimezone(tz)
    except ValueError:
        return occurrence


def live_state(campaign: Campaign) -> dict:
    """The live count and how often the page asks again: every 2 s while sends are under way, every
    10 s while the campaign runs or waits for its time, never once it ended (or is a draft)."""
    figures = enrollment_counts([campaign.pk])[campaign.pk]
    in_flight = figures["pending"] + figures["sending"] + figures["unknown"]
    # A past-behaviour campaign is CleverTap campaigns we create, one per occurrence (Launch).
    launches = list(campaign.launches.order_by("-id")[:LAUNCHES_SHOWN]) if campaign.kind == Kind.PAST else []
    in_flight += sum(1 for launch in launches if launch.state in LAUNCH_IN_FLIGHT)
    for launch in launches:  # the occurrence is kept as UTC text; shown in the workspace's zone
        launch.local_occurrence = _local(launch.occurrence, campaign.workspace.tz)
    if campaign.status == Status.RUNNING and in_flight:
        poll = "2s"
    elif campaign.status in ACTIVE:
        poll = "10s"
    else:
        poll = ""
    done = figures["sent"] + figures["failed"] + figures["skipped"]
    enrolled = figures["enrolled"]
    return {
        "figures": figures,
        "in_flight": in_flight,
        "percent": round(100 * done / enrolled) if enrolled else 0,
        "poll": poll,
        "launches": launches,
        "seen": f"{campaign.status}:{enrolled}:{done}:" + ",".join(f"{launch.pk}{launch.state}" for launch in launches),
    }


def _enrollments(request, campaign: Campaign) -> dict:
    """The campaign's enrollments, newest first, searchable by person (any identity value, the
    address the send went to, or the person's number), keyset-paginated."""
    rows = Enrollment.objects.filter(campaign=campaign)
    q = request.GET.get("q", "").strip()
    problem = string_problem(q) if q else None
    if q and not problem:
        people = Identity.objects.filter(workspace_id=campaign.workspace_id, value__in={q, q.lower()}).values(
            "profile_id"
        )
        match = Q(profile_id__in=people) | Q(to_value=q)
        if is_plain_int(q):
            match |= Q(profile_id=int(q))
        rows = rows.filter(match)
    page = keyset_page(rows, ("-id",), request.GET, prefix="e_", size=ENROLLMENTS_PAGE)
    return {"enrollments": page, "q": q, "q_problem": problem}


def _detail_context(request, campaign: Campaign) -> dict:
    tz = campaign.workspace.tz
    return {
        "campaign": campaign,
        "tz": campaign.workspace.timezone,
        "send_at_local": campaign.send_at.astimezone(tz) if campaign.send_at else None,
        "next_run_local": campaign.next_run_at.astimezone(tz) if campaign.next_run_at else None,
        "readiness": service.launch_readiness(campaign) if campaign.status == Status.DRAFT else None,
        "report": sorted((campaign.report or {}).items()) if isinstance(campaign.report, dict) else [],
        "can_stop": campaign.status in ACTIVE,
        **live_state(campaign),
        **_enrollments(request, campaign),
    }


@member_required
def campaign_detail(request, pk) -> HttpResponse:
    campaign = _campaign(request, pk)
    with timezone.override(campaign.workspace.tz):  # every time on the page in the workspace's zone
        return render(request, "console/campaigns/detail.html", _detail_context(request, campaign))


@member_required
def campaign_progress(request, pk) -> HttpResponse:
    """The live part of the campaign page (htmx polls it). When the figures changed since the page
    last saw them, the answer triggers `campaign-changed`: the enrollments table reloads itself."""
    campaign = _campaign(request, pk)
    context = {"campaign": campaign, **live_state(campaign)}
    with timezone.override(campaign.workspace.tz):
        response = render(request, "console/campaigns/_live.html", context)
    seen = request.GET.get("seen", "")
    if seen and seen != context["seen"]:
        response["HX-Trigger"] = "campaign-changed"
    return response


@action_required
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Estimate the reach, launch, stop, or delete a draft (POST only: each calls CleverTap or changes
    the campaign). Marketers, ops and owners; viewers get 403 from action_required."""
    campaign = _campaign(request, pk)
    if request.method != "POST":
        return redirect("console:campaign", pk=pk)
    if action == "estimate":
        _estimate(request, campaign)
    elif action == "launch":
        try:
            campaign = service.launch(campaign, user=request.user)
        except service.CampaignInvalid as exc:
            messages.error(request, f"Not launched: {exc}")
        except service.CampaignRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"“{campaign.name}” is {campaign.get_status_display().lower()}.")
    elif action == "stop":
        try:
            campaign = service.stop(campaign, user=request.user)
        except service.CampaignRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"“{campaign.name}” is stopped: it sends nothing more.")
    elif action == "delete":
        try:
            service.delete_campaign(campaign)
        except service.CampaignRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Draft “{campaign.name}” deleted.")
            return redirect("console:campaigns")
    else:
        raise Http404("unknown action")
    return redirect("console:campaign", pk=pk)
