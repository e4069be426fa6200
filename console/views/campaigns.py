"""Campaigns: the page that lists what engages the synced segments — the CleverTap campaigns
(campaigns app) and the partners' own campaigns (Kahuna's adaptive campaigns and their exports)."""

from django.shortcuts import render

from console.access import member_required
from integrations.connectors.registry import campaign_sections


@member_required
def campaign_list(request):
    return render(request, "console/campaigns/list.html", {"partner_sections": campaign_sections(request.workspace)})
