"""Fake receiver for Amplitude *Cohort Webhooks* (docs/partner-apis.md section 5).

Default payload: {"cohort_name", "cohort_id", "in_cohort": bool, "computed_time": "<epoch s>",
"message_id": "...::enter::0", "users": [{"user_id", "user_properties"}]}.
Amplitude retries on timeouts with the same message_id, so the fake dedupes on it and counts
duplicates (``fake.duplicates``) - a client-side test can then prove its retries are safe.
"""

from __future__ import annotations

from .base import FakePartner, Reply, Request


def _invalid(body: dict) -> str | None:
    for key, kind in (("cohort_id", str), ("message_id", str), ("in_cohort", bool), ("users", list)):
        if not isinstance(body.get(key), kind):
            return f"{key} is required ({kind.__name__})"
    return None


class CohortWebhookFake(FakePartner):
    kind = "cohort_webhook"

    def __init__(
        self,
        *,
        path: str | None = None,
        required_headers: dict[str, str] | None = None,
        validate: bool = True,
        reject_ids: tuple[str, ...] = (),
        **base: object,
    ) -> None:
        # validate=False accepts FreeMarker-templated payloads of any shape. reject_ids: user ids the
        # receiver refuses - the whole call gets a 400 naming them (clients must bisect).
        self.path, self.required_headers, self.validate = path, dict(required_headers or {}), validate
        self.reject_ids = set(reject_ids)
        super().__init__(**base)

    def reset_state(self) -> None:
        self.payloads: list[dict] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.cohorts: dict[str, set[str]] = {}

    def members(self, cohort_id: str) -> set[str]:
        return set(self.cohorts.get(cohort_id, set()))

    def summary(self) -> dict:
        return {"payloads": len(self.payloads), "duplicates": self.duplicates}

    def route(self, req: Request) -> Reply:
        if self.path and req.path != self.path:
            return Reply(404, {"error": "not found"})
        if req.method != "POST":
            return Reply(405, {"error": "method not allowed"})
        for name, value in self.required_headers.items():
            if req.header(name) != value:
                return Reply(401, {"error": f"missing or invalid header {name}"})
        if req.body_error or not isinstance(req.body, dict):
            return Reply(400, {"error": req.body_error or "body must be a JSON object"})
        if self.validate and (reason := _invalid(req.body)):
            return Reply(400, {"error": reason})
        bad = sorted({u.get("user_id") for u in req.body.get("users") or [] if isinstance(u, dict)} & self.reject_ids)
        if bad:
            return Reply(400, {"error": "invalid user id", "invalid": bad})
        message_id = req.body.get("message_id")
        if message_id is not None and message_id in self.seen:
            self.duplicates += 1
            return Reply(200, {"ok": True, "duplicate": True})
        if message_id is not None:
            self.seen.add(message_id)
        self.payloads.append(req.body)
        if isinstance(req.body.get("users"), list) and "cohort_id" in req.body:
            ids = {u.get("user_id") for u in req.body["users"] if isinstance(u, dict) and u.get("user_id")}
            cohort = self.cohorts.setdefault(str(req.body["cohort_id"]), set())
            if req.body.get("in_cohort", True):
                cohort.update(ids)
            else:
                cohort.difference_update(ids)
        return Reply(200, {"ok": True, "duplicate": False})
