"""Segments: the list, one segment's page (chart, adds/drops, ledger, members), CSV export."""

import csv
from datetime import datetime, time

from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, Subquery
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from audiences.identity import identities_with_value
from audiences.models import Identity, MembershipChange, Segment, SegmentMember
from audiences.stats import activity_24h, daily_history
from config.params import int_param
from console import timefmt, words
from console.access import member_required
from integrations.connectors.registry import segment_actions
from integrations.delivery.models import SyncJob, SyncRun

MEMBERS_PAGE = 50


@member_required
def segment_list(request) -> HttpResponse:
    segments = Segment.objects.for_workspace(request.workspace).order_by("name")
    kind = request.GET.get("type")
    if kind:
        segments = segments.filter(type=kind)
    query = request.GET.get("q", "").strip()
    if query:
        segments = segments.filter(Q(name__icontains=query) | Q(external_id=query))
    page = Paginator(segments, 50).get_page(request.GET.get("page"))
    activity = activity_24h([segment.pk for segment in page])
    synced = synced_to([segment.pk for segment in page])
    for segment in page:
        segment.synced_to = synced.get(segment.pk, [])
    rows = [(segment, activity[segment.pk]) for segment in page]
    return render(
        request,
        "console/segments/list.html",
        {"rows": rows, "page": page, "types": words.segment_types(), "type": kind, "q": query},
    )


def synced_to(segment_ids: list[int]) -> dict[int, list[SyncJob]]:
    """Each segment's syncs with the destination's name and `last_delivery`: when a run of it last
    delivered rows (the newest such run, read backwards on the (job, id) index), None if never."""
    last_delivery = (
        SyncRun.objects.filter(job=OuterRef("pk"), delivered__gt=0).order_by("-id").values("finished_at")[:1]
    )
    synced: dict[int, list[SyncJob]] = {}
    for job in (
        SyncJob.objects.filter(segment_id__in=segment_ids)
        .select_related("destination")
        .annotate(last_delivery=Subquery(last_delivery))
        .order_by("destination__name")
    ):
        synced.setdefault(job.segment_id, []).append(job)
    return synced


def _member_rows(segment: Segment, query: str, after: int | None):
    members = SegmentMember.objects.filter(segment=segment).select_related("profile").order_by("-id")
    if query:
        profile_ids = identities_with_value(segment.workspace_id, query).values("profile_id")
        members = members.filter(profile_id__in=profile_ids)
    if after:
        members = members.filter(id__lt=after)
    page = list(members[: MEMBERS_PAGE + 1])  # keyset pagination: no OFFSET, no COUNT
    has_more = len(page) > MEMBERS_PAGE
    page = page[:MEMBERS_PAGE]
    identities: dict[int, list[Identity]] = {}
    for identity in Identity.objects.filter(profile_id__in=[m.profile_id for m in page]).order_by("kind"):
        identities.setdefault(identity.profile_id, []).append(identity)
    return [(m, identities.get(m.profile_id, [])) for m in page], (page[-1].id if has_more and page else None)


def _ledger(request, segment: Segment):
    changes = MembershipChange.objects.filter(segment=segment).order_by("-id")
    action = request.GET.get("action")
    if action in {"added", "removed"}:
        changes = changes.filter(action=action)
    tz = segment.workspace.tz
    for name, op in (("from", "gte"), ("to", "lte")):
        raw = request.GET.get(name)
        if raw:
            try:
                day = datetime.strptime(raw, "%Y-%m-%d").date()
            except ValueError:
                continue
            moment = timezone.make_aware(datetime.combine(day, time.min if op == "gte" else time.max), tz)
            changes = changes.filter(**{f"occurred_at__{op}": moment})
    before = int_param(request.GET, "before")
    if before is not None:
        changes = changes.filter(id__lt=before)
    page = list(changes[:51])
    return page[:50], (page[49].id if len(page) > 50 else None)


@member_required
def segment_detail(request, pk) -> HttpResponse:
    segment = get_object_or_404(Segment.objects.for_workspace(request.workspace), pk=pk)
    history = daily_history(segment, days=30)
    query = request.GET.get("member", "").strip()
    members, next_after = _member_rows(segment, query, int_param(request.GET, "after"))
    ledger, next_before = _ledger(request, segment)
    context = {
        "segment": segment,
        "activity": activity_24h([segment.pk])[segment.pk],
        "history": history,
        "chart": {
            "labels": [timefmt.day(point.day, short=True) for point in history],
            "size": [point.size for point in history],
            "added": [point.added for point in history],
            "removed": [point.removed for point in history],
        },
        "members": members,
        "member_query": query,
        "next_after": next_after,
        "ledger": ledger,
        "next_before": next_before,
        "ledger_filters": {k: request.GET.get(k, "") for k in ("action", "from", "to")},
        "partner_actions": segment_actions(),
        "synced_to": synced_to([segment.pk]).get(segment.pk, []),
    }
    if request.htmx and request.GET.get("part") == "members":
        return render(request, "console/segments/_members.html", context)
    if request.htmx and request.GET.get("part") == "ledger":
        return render(request, "console/segments/_ledger.html", context)
    return render(request, "console/segments/detail.html", context)


class _Echo:
    def write(self, value):
        return value


@member_required
def segment_members_csv(request, pk) -> StreamingHttpResponse:
    """Streams every member with their identities; a million rows never sit in memory."""
    segment = get_object_or_404(Segment.objects.for_workspace(request.workspace), pk=pk)

    def rows():
        writer = csv.writer(_Echo())
        yield writer.writerow(
            ["profile_id", "member_since", "user_id", "device_id", "email", "amplitude_id", "identities"]
        )
        members = (
            SegmentMember.objects.filter(segment=segment).order_by("id").values_list("id", "profile_id", "added_at")
        )
        last = 0
        while True:
            chunk = list(members.filter(id__gt=last)[:5000])
            if not chunk:
                return
            last = chunk[-1][0]
            by_profile: dict[int, dict[str, list[str]]] = {}
            for profile_id, kind, value in Identity.objects.filter(profile_id__in=[c[1] for c in chunk]).values_list(
                "profile_id", "kind", "value"
            ):
                by_profile.setdefault(profile_id, {}).setdefault(kind, []).append(value)
            for _id, profile_id, added_at in chunk:
                ids = by_profile.get(profile_id, {})
                first = {kind: (values[0] if values else "") for kind, values in ids.items()}
                yield writer.writerow(
                    [
                        profile_id,
                        added_at.isoformat(),
                        first.get("user_id", ""),
                        first.get("device_id", ""),
                        first.get("email", ""),
                        first.get("amplitude_id", ""),
                        ";".join(f"{kind}={value}" for kind, values in sorted(ids.items()) for value in values),
                    ]
                )

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-members.csv"'
    return response
