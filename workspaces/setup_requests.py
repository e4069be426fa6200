"""Asking for setup: a marketer, who may not touch credentials, asks the owners and ops of the
workspace to connect Amplitude, create an inbound key, or add a destination or credentials.

One click records the request, shows it on the owners' and ops' dashboard until one of them marks
it done, and mails them (Django's mail, after the commit; a mail outage loses only the mail). Asking
is rate-limited per person: the same thing once per REPEAT_AFTER, at most PER_HOUR requests an hour,
checked under a lock on the asker's membership so that two clicks at once count as two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from workspaces.models import CREDENTIAL_ROLES, Membership, SetupRequest, SetupTopic

logger = logging.getLogger(__name__)

REPEAT_AFTER = timedelta(hours=1)  # the same request again, by the same person
PER_HOUR = 5  # requests of any kind, by one person in one workspace
DETAIL_CHARS = 120


@dataclass(frozen=True)
class Asked:
    request: SetupRequest | None  # None when refused by the rate limit
    message: str


def ask(membership: Membership, topic: str, *, detail: str = "", path: str, page_url: str) -> Asked:
    """Record `membership`'s request and notify the owners and ops, unless the rate limit refuses it.

    `path` is the console page where the thing is set up; `page_url` the same page as an absolute
    URL for the mail.
    """
    if topic not in SetupTopic.values:
        raise ValueError(f"unknown setup topic {topic!r}")
    detail = detail.strip()[:DETAIL_CHARS]
    now = timezone.now()
    with transaction.atomic():
        Membership.objects.select_for_update().get(pk=membership.pk)  # one request at a time per person
        mine = SetupRequest.objects.filter(workspace_id=membership.workspace_id, requested_by_id=membership.user_id)
        same = mine.filter(topic=topic, detail=detail, done_at__isnull=True, created_at__gt=now - REPEAT_AFTER).first()
        if same is not None:
            return Asked(None, f"You asked for this {_ago(now - same.created_at)}; the owners and ops have been told.")
        if mine.filter(created_at__gt=now - timedelta(hours=1)).count() >= PER_HOUR:
            return Asked(None, f"You have sent {PER_HOUR} requests in the last hour; try again later.")
        request = SetupRequest.objects.create(
            workspace_id=membership.workspace_id,
            requested_by_id=membership.user_id,
            topic=topic,
            detail=detail,
            path=path[:200],
        )
        transaction.on_commit(lambda: _mail(request, page_url))
    return Asked(
        request, "Asked: the owners and ops of this workspace have been told, by email and on their dashboard."
    )


def open_requests(workspace_id: int, limit: int = 20) -> list[SetupRequest]:
    return list(
        SetupRequest.objects.filter(workspace_id=workspace_id, done_at__isnull=True)
        .select_related("requested_by")
        .order_by("-id")[:limit]
    )


def mark_done(request: SetupRequest, user) -> None:
    SetupRequest.objects.filter(pk=request.pk, done_at__isnull=True).update(done_at=timezone.now(), done_by=user)


def recipients(workspace_id: int) -> list[str]:
    """The owners' and ops' email addresses (those who have one)."""
    return list(
        Membership.objects.filter(workspace_id=workspace_id, role__in=CREDENTIAL_ROLES)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
        .distinct()
    )


def _mail(request: SetupRequest, page_url: str) -> None:
    to = recipients(request.workspace_id)
    if not to:
        return
    asker = request.requested_by.get_username() if request.requested_by else "Someone"
    workspace = request.workspace.name
    subject = f"[Cohort Console] {asker} asks you to {request.get_topic_display()} ({workspace})"
    body = (
        f"{asker} (a member of {workspace} who may not handle credentials) asks you to "
        f"{request.what}.\n\nIt is set up here: {page_url}\n\n"
        "The request is also on your dashboard in the console; mark it done there once it is set up.\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    except Exception:  # a mail outage must not lose the request: it is on the dashboard already
        logger.exception("could not mail setup request %s", request.pk)


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return "just now" if minutes < 1 else f"{minutes} minute{'s' if minutes != 1 else ''} ago"
