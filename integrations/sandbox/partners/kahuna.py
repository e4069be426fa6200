"""Fake Kahuna APIs (docs/partner-apis.md section 8). Kahuna is discontinued, so this fake is the
only realistic test target.

    POST /log                   form-encoded: key=<secret>, env=p|s, dev_id, event, ...   (no auth header)
    JSON, Basic secret_key:api_key, ?env=p|s:
    POST /api/userattributes    {"user_attributes_array": [{"target": {...}, "attributes": {...}}]}  (<= 100)
    POST /api/campaign/populate {"campaign_config": {"campaign_id": ...}, ...} -> {"success", "job_id"}
    POST /api/push              {"push_array": [...]} -> [{"success": true}, ...]
    GET  /api/campaigns         UNCONFIRMED: our assumption of how the Adaptive-campaign dropdown is fed
"""

from __future__ import annotations

import copy
from typing import ClassVar

from .base import MB, FakePartner, Reply, Request

CREDENTIALS = ("username", "email", "fbid", "user_id", "install_token")
DEFAULT_CAMPAIGNS = {
    "p": [
        {"id": "camp-p-1", "name": "Win-back", "enabled": True},
        {"id": "camp-p-2", "name": "Paused promo", "enabled": False},
    ],
    "s": [{"id": "camp-s-1", "name": "Sandbox test", "enabled": True}],
}


class KahunaFake(FakePartner):
    kind = "kahuna"
    default_max_body = 10 * MB  # populate bodies must stay under 10 MB
    default_concurrency_cap = 10  # applies to /api/campaign/populate only ("<= 10 simultaneous")
    concurrency_headers: ClassVar[dict[str, str]] = {}  # UNCONFIRMED whether Kahuna sent Retry-After; assume not

    def __init__(
        self,
        *,
        secret_key: str = "test-secret",
        api_key: str = "test-api-key",
        campaigns: dict[str, list[dict]] | None = None,
        max_attributes: int = 100,
        reject_ids: list[str] | None = None,
        **base: object,
    ) -> None:
        self.secret_key, self.api_key, self.max_attributes = secret_key, api_key, max_attributes
        # Test knob: a target holding one of these credential values makes Kahuna refuse the whole call.
        self.reject_ids = set(reject_ids or ())
        self.campaigns = copy.deepcopy(campaigns if campaigns is not None else DEFAULT_CAMPAIGNS)
        super().__init__(**base)

    def reset_state(self) -> None:
        self.events: dict[str, list[dict]] = {"p": [], "s": []}
        self.user_attributes: dict[str, dict[str, dict]] = {"p": {}, "s": {}}  # env -> "email:x" -> attrs
        self.jobs: list[dict] = []
        self.pushes: list[dict] = []

    def summary(self) -> dict:
        return {"events": sum(map(len, self.events.values())), "jobs": len(self.jobs), "pushes": len(self.pushes)}

    def error_body(self, status: int, message: str) -> dict:
        return {"error_code": status, "success": False, "error": message}

    def concurrency_slot(self, req: Request) -> tuple[str, int | None]:
        if req.path == "/api/campaign/populate":
            return "populate", self.faults.concurrency_cap
        return "", None

    def route(self, req: Request) -> Reply:
        if (req.method, req.path) == ("POST", "/log"):
            return self._log_event(req)
        handler = {
            ("POST", "/api/userattributes"): self._user_attributes,
            ("POST", "/api/campaign/populate"): self._populate,
            ("POST", "/api/push"): self._push,
            ("GET", "/api/campaigns"): self._list_campaigns,
        }.get((req.method, req.path))
        if handler is None:
            return self.fault_reply(404, "Not found")
        if req.basic_auth() != (self.secret_key, self.api_key):
            return self.fault_reply(401, "Authentication failed")
        env = req.query.get("env")
        if env not in ("p", "s"):
            return self.fault_reply(400, "env must be p or s")
        if req.method == "POST" and (req.body_error or not isinstance(req.body, dict)):
            return self.fault_reply(400, "body must be a JSON object")
        return handler(env, req.body)

    def _log_event(self, req: Request) -> Reply:
        form = req.body if isinstance(req.body, dict) else {}
        if form.get("key") != self.secret_key:
            return self.fault_reply(401, "Authentication failed")
        if form.get("env") not in ("p", "s") or not form.get("dev_id") or not form.get("event"):
            return self.fault_reply(400, "env (p|s), dev_id and event are required")
        self.events[form["env"]].append(form)
        return Reply(200, {"success": True})  # UNCONFIRMED: exact /log success body

    def _user_attributes(self, env: str, body: dict) -> Reply:
        items = body.get("user_attributes_array")
        if not isinstance(items, list) or not 0 < len(items) <= self.max_attributes:
            return self.fault_reply(400, f"user_attributes_array must hold 1..{self.max_attributes} items")
        for item in items:
            target = item.get("target") if isinstance(item, dict) else None
            if not isinstance(target, dict) or not any(target.get(c) for c in CREDENTIALS):
                return self.fault_reply(400, "each item needs a target with a user credential")
            if not isinstance(item.get("attributes"), dict):
                return self.fault_reply(400, "each item needs an attributes object")
            if bad := self.reject_ids & {str(v) for v in target.values()}:
                return self.fault_reply(400, f"Invalid user credential: {min(bad)}")
        for item in items:
            cred = next(c for c in CREDENTIALS if item["target"].get(c))
            self.user_attributes[env].setdefault(f"{cred}:{item['target'][cred]}", {}).update(item["attributes"])
        return Reply(200, {"success": True})

    def _populate(self, env: str, body: dict) -> Reply:
        config = body.get("campaign_config")
        campaign_id = config.get("campaign_id") if isinstance(config, dict) else None
        campaign = next((c for c in self.campaigns.get(env, []) if c["id"] == campaign_id), None)
        if campaign is None:
            return self.fault_reply(404, "Campaign not found")
        if not campaign.get("enabled", True):
            return self.fault_reply(400, "Campaign is not enabled")  # UNCONFIRMED status/wording
        job = {"job_id": f"job-{len(self.jobs) + 1}", "env": env, "campaign_id": campaign_id, "body": body}
        self.jobs.append(job)  # the real API is async: it only hands back a job id
        return Reply(200, {"success": True, "job_id": job["job_id"]})

    def _push(self, env: str, body: dict) -> Reply:
        pushes = body.get("push_array")
        if not isinstance(pushes, list) or not pushes:
            return self.fault_reply(400, "push_array must be a non-empty list")
        self.pushes.extend({"env": env, **p} for p in pushes if isinstance(p, dict))
        return Reply(200, [{"success": True} for _ in pushes])

    def _list_campaigns(self, env: str, body: object) -> Reply:
        # UNCONFIRMED: Kahuna's campaign-listing API is undocumented; this is our assumed shape.
        return Reply(
            200, {"campaigns": [{"enabled": True, **c, "type": "adaptive"} for c in self.campaigns.get(env, [])]}
        )
