"""Setup pages seen by members who may not touch credentials: what their "ask an owner or ops" box
needs (console/_ask_owner.html). The request itself is workspaces.setup_requests."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from integrations.connectors.registry import CONNECTORS
from workspaces.models import SetupRequest, SetupTopic
from workspaces.setup_requests import REPEAT_AFTER

# Where each topic is set up (never taken from the request: it goes into a mail).
TOPIC_PAGES = {
    SetupTopic.AMPLITUDE: "console:sources",
    SetupTopic.INBOUND_KEY: "console:api-keys",
    SetupTopic.AUTHORIZATION: "console:authorizations",
    SetupTopic.DESTINATION: "console:destinations",
}


def ask_context(request: HttpRequest, topic: str, detail: str = "", why: str = "") -> dict:
    """What the read-only box of a setup page needs (console/_ask_owner.html)."""
    label = SetupTopic(topic).label
    asked = (  # asked again after REPEAT_AFTER: the button comes back then
        SetupRequest.objects.filter(
            workspace=request.workspace,
            requested_by=request.user,
            topic=topic,
            detail=detail,
            done_at__isnull=True,
            created_at__gt=timezone.now() - REPEAT_AFTER,
        )
        .order_by("-id")
        .first()
    )
    return {
        "ask": {
            "topic": topic,
            "detail": detail,
            "label": f"{label} ({detail})" if detail else label,
            "why": why,
            "asked": asked,
        }
    }


def kind_label(kind: str) -> str:
    return CONNECTORS[kind].partner if kind in CONNECTORS else ""
