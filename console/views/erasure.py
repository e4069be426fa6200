"""Erasing a person from the console (owners and ops), and the erasures' audit trail.

The person page offers "Erase this person"; a confirmation page says what goes; the result page
shows what was removed and each destination's answer. The same function as the API and the admin
(audiences.erasure.erase) does the work.
"""

from collections.abc import Callable
from functools import wraps

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from audiences.erasure import ErasureBusy, erase
from audiences.erasure_api import ERASER_ROLES
from audiences.models import Erasure, Identity, Profile, SegmentMember
from console.access import member_required


def eraser_required(view) -> Callable[..., HttpResponse]:
    """Owners and ops: erasing people cannot be undone, and the audit trail is theirs."""

    @member_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.membership.role not in ERASER_ROLES:
            reason = "Only owners and ops can erase people or read the erasures."
            return render(request, "console/forbidden.html", {"reason": reason}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


@eraser_required
def person_erase(request, pk) -> HttpResponse:
    profile = get_object_or_404(Profile.objects.for_workspace(request.workspace), pk=pk)
    if request.method == "POST":
        try:
            result = erase(
                request.workspace,
                profile_id=profile.pk,
                user=request.user,
                label=request.user.get_username(),
                via="console",
            )
        except ErasureBusy as exc:
            return render(request, "console/erasures/confirm.html", _confirm_context(profile, str(exc)), status=409)
        return redirect("console:erasure", pk=result.erasure_id)
    return render(request, "console/erasures/confirm.html", _confirm_context(profile))


def _confirm_context(profile: Profile, error: str = "") -> dict:
    return {
        "profile": profile,
        "identities": Identity.objects.filter(profile=profile).order_by("kind", "value"),
        "segments": SegmentMember.objects.filter(profile=profile).count(),
        "error": error,
    }


@eraser_required
def erasure_list(request) -> HttpResponse:
    erasures = Erasure.objects.for_workspace(request.workspace)[:100]
    return render(request, "console/erasures/list.html", {"erasures": erasures})


@eraser_required
def erasure_detail(request, pk) -> HttpResponse:
    erasure = get_object_or_404(Erasure.objects.for_workspace(request.workspace), pk=pk)
    return render(request, "console/erasures/detail.html", {"erasure": erasure})
