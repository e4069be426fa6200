"""Fake partner for Amplitude's *property-based* cohort sync (docs/partner-apis.md section 3).

Accepts, on any path (or only ``path`` when configured, since the URL is partner-chosen):
    {"type": "identify", "userId": "u1", "traits": {"[Amplitude] Name: id": true}, "context": {...}}
    {"batch": [<identify>, ...]}
Traits are merged per user: ``fake.traits[user_id]``; ``fake.members(trait)`` = users with it true.
"""

from __future__ import annotations

from ._amplitude import AmplitudeReceiver
from .base import Reply, Request


def _invalid(item: object) -> str | None:
    if not isinstance(item, dict) or item.get("type") != "identify":
        return 'expected {"type": "identify", ...}'
    if not isinstance(item.get("userId"), str) or not item["userId"]:
        return "userId is required"
    if not isinstance(item.get("traits"), dict):
        return "traits must be an object"
    return None


class TraitsApiFake(AmplitudeReceiver):
    kind = "traits_api"

    def __init__(self, *, path: str | None = None, **options: object) -> None:
        self.path = path
        super().__init__(**options)

    def reset_state(self) -> None:
        self.traits: dict[str, dict] = {}
        self.identify_count = 0

    def members(self, trait: str) -> set[str]:
        return {user for user, traits in self.traits.items() if traits.get(trait) is True}

    def summary(self) -> dict:
        return {"users": len(self.traits), "identifies": self.identify_count}

    def receive(self, req: Request) -> Reply:
        if self.path and req.path != self.path:
            return Reply(404, {"error": "not found"})
        items = req.body.get("batch", [req.body])
        if not isinstance(items, list) or not items:
            return Reply(400, {"error": "batch must be a non-empty list"})
        if len(items) > self.max_ids:
            return Reply(400, {"error": "batch too large", "max": self.max_ids})
        for index, item in enumerate(items):
            if reason := _invalid(item):
                return Reply(400, {"error": reason, "index": index})
        accepted, error, rejected = self.screen([item["userId"] for item in items])
        if error:
            return error
        keep = set(accepted)
        for item in items:
            if item["userId"] in keep:
                self.traits.setdefault(item["userId"], {}).update(item["traits"])
                self.identify_count += 1
        return self.ok(rejected)
