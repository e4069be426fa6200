"""Kahuna's console pages: Export to Kahuna (Environment, then Campaign — the enabled Adaptive
campaigns of that environment — then Export, as Kahuna's Amplitude guide describes), refreshing the
campaign list, and the Kahuna section of a destination page (its campaigns and recent exports).
"""

from django.contrib import messages
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
