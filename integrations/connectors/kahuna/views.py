"""Kahuna's console pages: Export to Kahuna (Environment, then Campaign — the enabled Adaptive
campaigns of that environment — then Export, as Kahuna's Amplitude guide describes), refreshing the
campaign list, the Kahuna section of a destination page (its campaigns and recent exports) and of
the Campaigns page (every enabled Adaptive campaign with the segments exported to it).
"""

from django.contrib import messages
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from audiences.models import Segment
from config.params import int_param
from console.access import action_required
from integrations.connectors.base import ConnectorError
from integrations.connectors.kahuna.actions import ExportRefused, request_export
from integrations.connectors.kahuna.export import refresh_campaigns
from integrations.connectors.kahuna.models import Environment, KahunaCampaign, KahunaExport
from integrations.delivery.models import Destination

CAMPAIGNS_SHOWN = 100
EXPORTS_SHOWN = 10
SEGMENTS_SHOWN = 20  # per campaign on the Campaigns page

# What a segment page offers for Kahuna: (button label, URL name taking the segment's pk).
SEGMENT_ACTIONS = [("Export to Kahuna", "console:export-to-kahuna")]


def destination_section(destination: Destination) -> dict:
    """What the destination page adds for a Kahuna destination (its template and what it shows)."""
    campaigns = list(
        KahunaCampaign.objects.filter(destination=destination).order_by("environment", "name")[: CAMPAIGNS_SHOWN + 1]
    )
    exports = (
        KahunaExport.objects.filter(campaign__destination=destination)
        .select_related("segment", "campaign")
        .order_by("-id")[:EXPORTS_SHOWN]
    )
    return {
        "partner_template": "kahuna/destination.html",
        "kahuna_campaigns": campaigns[:CAMPAIGNS_SHOWN],
        "kahuna_campaigns_more": len(campaigns) > CAMPAIGNS_SHOWN,
        "kahuna_exports": exports,
    }


def campaigns_section(workspace) -> dict:
    """What the Campaigns page shows for Kahuna: each enabled Adaptive campaign (the ones Export to
    Kahuna offers) with its environment and destination, and per segment exported to it the latest
    export and how many there were. Bounded: at most CAMPAIGNS_SHOWN campaigns, SEGMENTS_SHOWN
    segments each, one grouped query for all of them."""
    adaptive = KahunaCampaign.objects.for_workspace(workspace).filter(enabled=True, campaign_type="adaptive")
    campaigns = list(
        adaptive.select_related("destination").order_by("name", "environment", "pk")[: CAMPAIGNS_SHOWN + 1]
    )
    shown = campaigns[:CAMPAIGNS_SHOWN]
    grouped = (
        KahunaExport.objects.filter(campaign__in=shown)
        .values("campaign_id", "segment_id")
        .annotate(latest=Max("id"), count=Count("id"))
        .order_by("-latest")
    )
    latest = KahunaExport.objects.select_related("segment").in_bulk([row["latest"] for row in grouped])
    per_campaign: dict[int, list] = {}
    for row in grouped:
        per_campaign.setdefault(row["campaign_id"], []).append((latest[row["latest"]], row["count"]))
    return {
        "partner_template": "kahuna/campaigns.html",
        "kahuna_adaptive": [
            (campaign, per_campaign.get(campaign.pk, [])[:SEGMENTS_SHOWN], len(per_campaign.get(campaign.pk, [])))
            for campaign in shown
        ],
        "kahuna_adaptive_more": len(campaigns) > CAMPAIGNS_SHOWN,
        "kahuna_other": KahunaCampaign.objects.for_workspace(workspace).count() - adaptive.count(),
        "kahuna_destinations": list(
            Destination.objects.for_workspace(workspace).filter(kind="kahuna").order_by("name")[:10]
        ),
    }


@action_required
def export_to_kahuna(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment.objects.for_workspace(request.workspace), pk=pk)
    environment = request.POST.get("environment") or request.GET.get("environment") or Environment.PRODUCTION
    campaigns = (
        KahunaCampaign.objects.for_workspace(request.workspace)
        .filter(environment=environment, enabled=True, campaign_type="adaptive")
        .select_related("destination")
        .order_by("name")
    )
    error = ""
    campaign_id = int_param(request.POST, "campaign") if request.method == "POST" else None
    if campaign_id is not None:
        campaign = KahunaCampaign.objects.for_workspace(request.workspace).filter(pk=campaign_id).first()
        if campaign is None:
            error = "Pick a campaign from the list."
        else:
            try:
                export = request_export(segment, campaign, user=request.user)
            except ExportRefused as exc:
                error = str(exc)
            else:
                messages.success(request, f"Export #{export.pk} of “{segment.name}” to “{campaign.name}” queued.")
                return redirect("console:segment", pk=segment.pk)
    exports = KahunaExport.objects.filter(segment=segment).select_related("campaign").order_by("-id")[:10]
    if request.htmx and request.GET.get("part") == "campaigns":
        return render(request, "kahuna/_campaigns.html", {"campaigns": campaigns})
    return render(
        request,
        "kahuna/export.html",
        {
            "segment": segment,
            "environments": Environment.choices,
            "environment": environment,
            "campaigns": campaigns,
            "exports": exports,
            "error": error,
        },
    )


@action_required
def refresh_kahuna_campaigns(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask Kahuna for its campaigns (both environments) and update the list Export to Kahuna offers.

    Marketers may: it changes nothing at Kahuna and shows no credential. Campaigns entered by hand stay.
    """
    destination = get_object_or_404(Destination.objects.for_workspace(request.workspace).filter(kind="kahuna"), pk=pk)
    if request.method == "POST":
        try:
            listed = refresh_campaigns(destination)
        except ConnectorError as error:
            messages.error(request, f"Kahuna did not list the campaigns: {error.message}")
        else:
            messages.success(request, f"Kahuna listed {listed} campaign{'' if listed == 1 else 's'}.")
    return redirect(f"{reverse('console:destination', args=[pk])}#campaigns")
