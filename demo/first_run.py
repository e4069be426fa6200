"""Demo: the first-run path. A second, empty workspace whose dashboard shows the checklist (the demo's
people are members with the same roles: switch to it in the account menu of the top bar), and, in the demo workspace, a
request the marketer sent the owners and ops (on their dashboard, until marked done).

Idempotent: the workspace is found by slug; a request is added only while none is open.
"""

from integrations.connectors.registry import CONNECTORS
from workspaces.models import Membership, SetupRequest, SetupTopic, Workspace

FIRST_STEPS = "first-steps"


def populate_demo(workspace, state: dict, out) -> None:
    fresh, _ = Workspace.objects.get_or_create(
        slug=FIRST_STEPS, defaults={"name": "New workspace (first steps)", "timezone": workspace.timezone}
    )
    for membership in Membership.objects.filter(workspace=workspace).select_related("user"):
        Membership.objects.update_or_create(workspace=fresh, user=membership.user, defaults={"role": membership.role})
    marketer = Membership.objects.filter(workspace=workspace, role="marketer").select_related("user").first()
    if marketer and not SetupRequest.objects.filter(workspace=workspace, done_at__isnull=True).exists():
        SetupRequest.objects.create(
            workspace=workspace,
            requested_by=marketer.user,
            topic=SetupTopic.DESTINATION,
            detail=CONNECTORS["kochava"].label,
            path="/destinations/new/kochava/",
        )
    out.write(
        f"  First run: “{fresh.name}” shows the checklist (switch workspace in the account menu, top right); "
        "the marketer's request waits on the owners' dashboard."
    )
