"""Role checks for console views: one decorator per level, so a view states what it needs."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render


def member_required(view) -> Callable[..., HttpResponse]:
    """Signed in and a member of a workspace (the current one is request.workspace)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.workspace is None:
            return render(request, "console/no_workspace.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def credentials_required(view) -> Callable[..., HttpResponse]:
    """Owners and ops only: marketers and viewers never see or change secrets."""

    @member_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.membership.can_manage_credentials:
            return render(
                request,
                "console/forbidden.html",
                {"reason": "Only owners and ops can see or change credentials and API keys."},
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapper


def setup_page(view) -> Callable[..., HttpResponse]:
    """A page where owners and ops set up credentials: the other members read it (the view shows it
    read-only, with "ask an owner or ops") and may not post to it."""

    @member_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD") and not request.membership.can_manage_credentials:
            return render(
                request,
                "console/forbidden.html",
                {"reason": "Only owners and ops can see or change credentials and API keys."},
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapper


def action_required(view) -> Callable[..., HttpResponse]:
    """Viewers read; marketers, ops and owners act."""

    @member_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST" and not request.membership.can_act:
            return render(
                request, "console/forbidden.html", {"reason": "Viewers can read but not change anything."}, status=403
            )
        return view(request, *args, **kwargs)

    return wrapper
