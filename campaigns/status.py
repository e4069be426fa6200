"""The one writer of Campaign.status.

Every change goes through set_status: a conditional UPDATE from the states the move is allowed
from, so two workers (a stop and a launch, a finish and a stop) cannot both win, and a campaign
never goes back from an end state.
"""

from __future__ import annotations

from django.utils import timezone

from campaigns.models import Campaign, Status

ALLOWED: dict[str, frozenset[str]] = {
    Status.SCHEDULED: frozenset({Status.DRAFT}),
    Status.RUNNING: frozenset({Status.DRAFT, Status.SCHEDULED}),
    Status.STOPPED: frozenset({Status.SCHEDULED, Status.RUNNING}),
    Status.FINISHED: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.DRAFT, Status.SCHEDULED, Status.RUNNING}),
}
END_STATES = frozenset({Status.STOPPED, Status.FINISHED, Status.FAILED})


class BadTransition(ValueError):
    pass


def set_status(campaign: Campaign, status: str, *, reason: str = "", expect: set[str] | None = None) -> bool:
    """Move `campaign` to `status`; False (and nothing written) when it is no longer in a state the
    move is allowed from (or in `expect`, when given). `campaign` is updated in place on success."""
    allowed = ALLOWED.get(status)
    if allowed is None:
        raise BadTransition(f"No move leads to {status!r}.")
    sources = allowed if expect is None else allowed & frozenset(expect)
    now = timezone.now()
    fields = {"status": status, "status_reason": reason[:2000], "status_changed_at": now, "last_activity_at": now}
    if status == Status.RUNNING:
        fields["launched_at"] = campaign.launched_at or now
    if status in END_STATES:
        fields["next_run_at"] = None
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(**fields)
    if moved:
        for name, value in fields.items():
            setattr(campaign, name, value)
    return bool(moved)
