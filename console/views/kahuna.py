"""Export to Kahuna, as Kahuna's Amplitude guide describes: Environment, then Campaign (the enabled
Adaptive campaigns of that environment), then Export."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render

from audiences.models import Segment
from campaigns.kahuna import ExportRefused, request_export
from campaigns.models import Environment, KahunaCampaign, KahunaExport
from console.access import action_required


@action_required
def export_to_kahuna(request, pk):
    segment = get_object_or_404(Segment.objects.for_workspace(request.workspace), pk=pk)
    environment = request.POST.get("environment") or request.GET.get("environment") or Environment.PRODUCTION
    campaigns = KahunaCampaign.objects.for_workspace(request.workspace).filter(
        environment=environment, enabled=True, campaign_type="adaptive"
    ).select_related("destination").order_by("name")
    error = ""
    if request.method == "POST" and request.POST.get("campaign"):
        campaign = KahunaCampaign.objects.for_workspace(request.workspace).filter(pk=request.POST["campaign"]).first()
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
        return render(request, "console/kahuna/_campaigns.html", {"campaigns": campaigns})
    return render(request, "console/kahuna/export.html", {
        "segment": segment, "environments": Environment.choices, "environment": environment,
        "campaigns": campaigns, "exports": exports, "error": error,
    })
