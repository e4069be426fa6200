"""Demo pushes: the demo workspace receives what Amplitude and a Segment SDK would send, through the
real views (so the inbound log, batches, ledger and merges all show up), then applies them.
Once: a second run finds the workspace's batches and pushes nothing (the same add after its
remove would be a re-entry, not a duplicate: docs/inbound.md)."""

import base64
import json

from django.test import RequestFactory

from integrations.inbound import views
from integrations.inbound.apply import apply_pending, pending_scopes
from integrations.inbound.models import InboundBatch

CONTEXT = {"integration": {"name": "Amplitude Cohort Sync", "version": "1.0.0"}}


def _post(view, key: str, body: dict, **kwargs):
    request = RequestFactory().post(
        "/api/amplitude/demo",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        REMOTE_ADDR="127.0.0.1",
    )
    return view(request, **kwargs)


def populate_demo(workspace, state: dict, out) -> None:
    key = state.get("inbound_key")
    if not key:
        out.write("  Inbound demo skipped: no demo inbound key.")
        return
    if InboundBatch.objects.filter(workspace=workspace).exists():
        out.write("  Inbound demo: already pushed.")
        return
    created = _post(views.lists, key, {"name": "[Amplitude] Power users: 26umsb5", "context": CONTEXT})
    if created.status_code != 200:
        out.write(f"  Inbound demo skipped: /lists answered {created.status_code}.")
        return
    list_id = json.loads(created.content)["listId"]
    members = [f"demo-user-{n:04d}" for n in range(250)]
    # Blocked values and one an id can never be (a NUL): set aside with their reasons (admin → Inbound batches).
    ids = [*members, "null", "anonymous", "bad\u0000id"]
    _post(views.list_add, key, {"userIds": ids, "context": CONTEXT}, list_id=str(list_id))
    _post(views.list_remove, key, {"userIds": members[:25], "context": CONTEXT}, list_id=str(list_id))
    _post(
        views.amplitude_identify,
        key,
        {
            "batch": [
                {
                    "type": "identify",
                    "userId": user,
                    "traits": {"[Amplitude] Churn risk: 7khm89cz": True},
                    "context": CONTEXT,
                }
                for user in members[200:240]
            ]
        },
    )
    _post(
        views.amplitude_cohort_webhook,
        key,
        {
            "cohort_name": "Weekend listeners",
            "cohort_id": "wk3nd01",
            "in_cohort": True,
            "computed_time": "1692206763",
            "message_id": "demo-weekend::enter::0",
            "users": [{"user_id": user, "user_properties": {"plan": "pro"}} for user in members[100:130]],
        },
    )
    # A device seen anonymously, then identified as a known user: the anonymous profile merges in.
    _post(
        views.v1_views["identify"],
        key,
        {"anonymousId": "demo-phone-1", "traits": {"[Amplitude] Power users: 26umsb5": True}},
    )
    _post(
        views.v1_views["identify"],
        key,
        {"userId": members[0], "anonymousId": "demo-phone-1", "traits": {"email": "ada@example.com"}},
    )
    # Applied here too, so the demo shows data even before a worker runs (applying twice is harmless).
    for ws, segment in pending_scopes():
        if ws == workspace.pk:
            apply_pending(ws, segment)
    out.write(f"  Inbound demo: pushes to list {list_id} (Power users), 2 more cohorts and /v1/identify, applied.")
