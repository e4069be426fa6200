"""Resolve the signed-in user's current workspace once per request (session choice, else the first),
and show every moment of the request in that workspace's time zone (pages, messages, the admin)."""

from django.utils import timezone

from workspaces.models import Membership

SESSION_KEY = "workspace_id"


class CurrentWorkspaceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = None
        request.workspace = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            memberships = Membership.objects.filter(user=user).select_related("workspace")
            chosen = request.session.get(SESSION_KEY)
            membership = None
            if chosen is not None:
                membership = memberships.filter(workspace_id=chosen).first()
            membership = membership or memberships.order_by("workspace__name").first()
            if membership is not None:
                request.membership = membership
                request.workspace = membership.workspace
        if request.workspace is None:
            return self.get_response(request)
        timezone.activate(request.workspace.tz)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
