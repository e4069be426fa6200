"""People: search by any identity value, Segment activity (who joined or left a segment: the Partner Sync events), the person page."""

from collections import Counter
from datetime import datetime, time

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from audiences.identity import identities_starting_with, identity_kinds
from audiences.models import Event, Identity, MembershipChange, Profile, ProfileMerge, Segment, SegmentMember
from config.params import int_param, is_plain_int
from config.safe_json import string_problem
from console.access import member_required
from console.paging import keyset_page
from console.trace import person_timeline, why_lines

COMMON_PROPERTIES = ("country", "city", "region", "platform", "os", "language", "device_type")
FIND_PAGE = 100
SEARCH_SHOWN = 50


@member_required
def person_search(request) -> HttpResponse:
    """A person by any identity value, exact or by its start (a prefix)."""
    query = request.GET.get("q", "").strip()
    exact, prefixed = [], []
    if query and not string_problem(query):
        workspace_id = request.workspace.pk
        kinds = identity_kinds(workspace_id)
        typed = list(dict.fromkeys([query, query.lower()]))
        # Probes of the unique (workspace, kind, value) index under each kind the workspace uses, fast
        # with millions of identities (an iexact match would read them all): emails typed with
        # capitals still find their person.
        identities = Identity.objects.filter(workspace_id=workspace_id, kind__in=kinds, value__in=typed)
        if is_plain_int(query):
            identities = identities | Identity.objects.filter(workspace_id=workspace_id, profile_id=int(query))
        exact = list(identities.select_related("profile").order_by("profile_id")[:SEARCH_SHOWN])
        profile_ids = sorted({identity.profile_id for identity in exact})
        if len(profile_ids) == 1:
            return redirect("console:person", pk=profile_ids[0])
        prefixed = identities_starting_with(workspace_id, kinds, typed, SEARCH_SHOWN + 1, exclude=exact)
    more = len(prefixed) > SEARCH_SHOWN
    context = {"q": query, "matches": exact, "prefixed": prefixed[:SEARCH_SHOWN], "more": more}
    return render(request, "console/people/search.html", context)


@member_required
def find_people(request) -> HttpResponse:
    """People who had a Partner Sync event, by segment, action and date, with their common properties."""
    workspace = request.workspace
    changes = MembershipChange.objects.filter(workspace=workspace).select_related("segment")
    filters = {key: request.GET.get(key, "") for key in ("segment", "action", "from", "to")}
    segment = int_param(request.GET, "segment")
    if segment is not None:
        changes = changes.filter(segment_id=segment)
    if filters["action"] in {"added", "removed"}:
        changes = changes.filter(action=filters["action"])
    for name, op in (("from", "gte"), ("to", "lte")):
        try:
            day = datetime.strptime(filters[name], "%Y-%m-%d").date()
        except ValueError:
            continue
        moment = timezone.make_aware(datetime.combine(day, time.min if op == "gte" else time.max), workspace.tz)
        changes = changes.filter(**{f"occurred_at__{op}": moment})
    page = keyset_page(changes, ("-id",), request.GET, size=FIND_PAGE)
    rows = page.rows
    profiles = Profile.objects.in_bulk({row.profile_id for row in rows})
    identities: dict[int, list[Identity]] = {}
    for identity in Identity.objects.filter(profile_id__in=profiles.keys()).order_by("kind"):
        identities.setdefault(identity.profile_id, []).append(identity)
    common = {name: Counter() for name in COMMON_PROPERTIES}
    for profile in profiles.values():
        for name in COMMON_PROPERTIES:
            value = (profile.properties or {}).get(name)
            if value not in (None, ""):
                common[name][str(value)] += 1
    context = {
        "rows": [(row, profiles.get(row.profile_id), identities.get(row.profile_id, [])) for row in rows],
        "page": page,
        "people_count": len(profiles),
        "common": {name: counter.most_common(5) for name, counter in common.items() if counter},
        "segments": Segment.objects.for_workspace(workspace).order_by("name"),
        "filters": filters,
    }
    return render(request, "console/people/find.html", context)


@member_required
def person_detail(request, pk) -> HttpResponse:
    workspace = request.workspace
    merged = ProfileMerge.objects.filter(workspace=workspace, removed_profile_id=pk).first()
    if merged and not Profile.objects.filter(pk=pk, workspace=workspace).exists():
        return redirect("console:person", pk=merged.kept_profile_id)
    profile = get_object_or_404(Profile.objects.for_workspace(workspace), pk=pk)
    memberships = SegmentMember.objects.filter(profile=profile).select_related("segment").order_by("segment__name")
    context = {
        "profile": profile,
        "identities": Identity.objects.filter(profile=profile).order_by("kind", "value"),
        "memberships": memberships,
        "why": why_lines(profile, memberships),
        "timeline": person_timeline(profile),
        "event_count": Event.objects.filter(profile=profile).count(),
    }
    with timezone.override(workspace.tz):  # the page's times in the workspace's zone
        return render(request, "console/people/detail.html", {**context, "tz": workspace.timezone})
