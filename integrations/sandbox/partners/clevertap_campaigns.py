"""The fake CleverTap's Campaign API (docs/partner-apis.md section 6, "Campaigns"), mixed into CleverTapFake.

    POST /1/targets/create.json   {"name", "target_mode", "where", "content", "when", "estimate_only"?}
    POST /1/targets/list.json     {"from": YYYYMMDD, "to": YYYYMMDD}
    POST /1/targets/stop.json     {"id": n}
    POST /1/targets/result.json   {"id": n}
    POST /1/send/<mode>.json      {"name", "tag_group"?, "to": {"identity": [...], "objectId": [...]}, "content"}

Rate limits per endpoint group (requests per rolling second; over it: 429, nothing applied), and a
count of sends per (campaign tag, person) so a duplicate send is visible (`duplicate_sends`).
`lose_answers`: the next N create/send calls are applied and then the connection is dropped without
an answer — the "did it happen?" case a client must look up rather than retry.
"""

from __future__ import annotations

import time
from collections import Counter, deque

from .base import Reply, Request

SEND_MODES = ("push", "webpush", "email", "sms", "whatsapp")
# ASSUMPTION (docs/partner-apis.md): create 3 requests/s, targeted sends 1 000 ids per call; the other
# endpoints share a generous limit. All settable per server (campaign_rates=...).
DEFAULT_RATES = {"create": 3, "send": 10, "other": 20}
FIRST_ID = 1457432766  # CleverTap ids look like epoch seconds


class CampaignApiMixin:
    campaign_rates: dict[str, int]
    max_send_ids: int = 1000

    def reset_campaigns(self) -> None:
        self.campaigns: dict[int, dict] = {}
        self.next_campaign_id = FIRST_ID
        self.sends_per_person: Counter[tuple[str, str]] = Counter()  # (tag, person) -> sends
        self.sent_total = 0
        self.lose_answers = 0
        self._windows: dict[str, deque] = {}

    def campaign_summary(self) -> dict:
        return {
            "campaigns": len(self.campaigns),
            "campaign_sends": self.sent_total,
            "duplicate_sends": sum(n - 1 for n in self.sends_per_person.values() if n > 1),
        }

    def is_campaign_path(self, path: str) -> bool:
        return path.startswith(("/1/targets/", "/1/send/"))

    def _over_rate(self, group: str) -> bool:
        limit = self.campaign_rates.get(group) or 0
        if not limit:
            return False
        window = self._windows.setdefault(group, deque())
        now = time.monotonic()
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            return True
        window.append(now)
        return False

    def campaign_route(self, req: Request) -> Reply | None:
        body = req.body if isinstance(req.body, dict) else None
        if req.body_error or body is None:
            return self.fault_reply(400, "Payload must be a JSON object")
        path = req.path
        if path.startswith("/1/send/"):
            mode = path[len("/1/send/") : -len(".json")] if path.endswith(".json") else ""
            if mode not in SEND_MODES:
                return self.fault_reply(404, "Resource not found")
            group = "send"
        elif path == "/1/targets/create.json":
            group = "create"
        elif path in ("/1/targets/list.json", "/1/targets/stop.json", "/1/targets/result.json"):
            group = "other"
        else:
            return self.fault_reply(404, "Resource not found")
        if self._over_rate(group):
            return self.fault_reply(429, "Rate limit exceeded")
        if group == "send":
            reply = self._targeted_send(mode, body)
        elif group == "create":
            reply = self._create(body)
        elif path.endswith("list.json"):
            reply = self._list(body)
        elif path.endswith("stop.json"):
            reply = self._stop(body)
        else:
            reply = self._result(body)
        if group in ("send", "create") and reply.status == 200 and not body.get("estimate_only") and self.lose_answers:
            self.lose_answers -= 1
            return None  # applied, answer lost
        return reply

    # ---- endpoints -------------------------------------------------------------------------
    def _audience(self, where: object) -> list[str]:
        """Profiles matching `where`: the profile-property filter the console sends (name equals value)."""
        fields = []
        if isinstance(where, dict):
            fields = (where.get("common_profile_properties") or {}).get("profile_fields") or []
        if not fields:
            return list(self.profiles)
        return [
            key
            for key, data in self.profiles.items()
            if all(isinstance(f, dict) and data.get(f.get("name")) == f.get("value") for f in fields)
        ]

    def _new_campaign(self, name: str, kind: str, mode: str, audience: int) -> dict:
        campaign_id = self.next_campaign_id
        self.next_campaign_id += 1
        campaign = {
            "id": campaign_id,
            "name": name,
            "kind": kind,
            "target_mode": mode,
            "status": "running" if kind == "targeted" else "scheduled",
            "scheduled_on": int(time.strftime("%Y%m%d%H%M", time.gmtime())),
            "audience": audience,
            "sent": 0,
        }
        self.campaigns[campaign_id] = campaign
        return campaign

    def _create(self, body: dict) -> Reply:
        name, mode = body.get("name"), body.get("target_mode")
        if not isinstance(name, str) or not name:
            return self.fault_reply(400, "name is mandatory")
        if mode not in SEND_MODES:
            return self.fault_reply(400, f"Invalid target_mode {mode!r}")
        if not isinstance(body.get("content"), dict):
            return self.fault_reply(400, "content is mandatory")
        audience = self._audience(body.get("where"))
        half = len(audience) // 2
        estimates = {"android": len(audience) - half, "ios": half}
        if body.get("estimate_only"):
            return Reply(200, {"status": "success", "estimates": estimates})
        campaign = self._new_campaign(name, "segment", mode, len(audience))
        when = body.get("when", "now")
        if when == "now":  # sent at once: the report shows everyone reached
            campaign["status"], campaign["sent"] = "completed", len(audience)
            self.sent_total += len(audience)
        return Reply(200, {"status": "success", "id": campaign["id"], "estimates": estimates})

    def _targeted_send(self, mode: str, body: dict) -> Reply:
        to = body.get("to")
        if not isinstance(to, dict) or not any(isinstance(v, list) and v for v in to.values()):
            return self.fault_reply(400, "'to' must name identity or objectId values")
        ids = [(kind, str(v)) for kind, values in to.items() if isinstance(values, list) for v in values]
        if len(ids) > self.max_send_ids:
            return self.fault_reply(400, f"At most {self.max_send_ids} ids per request")
        if not isinstance(body.get("content"), dict):
            return self.fault_reply(400, "content is mandatory")
        tag = str(body.get("tag_group") or body.get("name") or "")
        campaign = self._new_campaign(str(body.get("name") or tag), "targeted", mode, len(ids))
        unprocessed = []
        for kind, value in ids:
            if self.keep_data and self.profiles and value not in self.profiles:
                unprocessed.append({"id": value, "error": "No profile with this id"})
                continue
            self.sends_per_person[(tag, value)] += 1
            campaign["sent"] += 1
            self.sent_total += 1
        campaign["status"] = "completed"
        return Reply(
            200,
            {
                "status": "success",
                "id": campaign["id"],
                "processed": len(ids) - len(unprocessed),
                "unprocessed": unprocessed,
            },
        )

    def _list(self, body: dict) -> Reply:
        low, high = body.get("from"), body.get("to")
        if not isinstance(low, int) or not isinstance(high, int):
            return self.fault_reply(400, "from and to are mandatory (YYYYMMDD)")
        targets = [
            {"id": c["id"], "name": c["name"], "scheduled_on": c["scheduled_on"], "status": c["status"]}
            for c in self.campaigns.values()
            if low <= c["scheduled_on"] // 10000 <= high
        ]
        return Reply(200, {"status": "success", "targets": targets})

    def _find(self, body: dict) -> dict | Reply:
        campaign = self.campaigns.get(body.get("id")) if isinstance(body.get("id"), int) else None
        return campaign if campaign is not None else self.fault_reply(400, "Invalid campaign id")

    def _stop(self, body: dict) -> Reply:
        campaign = self._find(body)
        if isinstance(campaign, Reply):
            return Reply(200, {"status": "fail", "error": "Invalid campaign id", "code": 400})
        if campaign["status"] in ("scheduled", "running"):
            campaign["status"] = "stopped"
        return Reply(200, {"status": "success"})

    def _result(self, body: dict) -> Reply:
        campaign = self._find(body)
        if isinstance(campaign, Reply):
            return campaign
        sent = campaign["sent"]
        stats = {"sent": sent, "viewed": sent // 2, "clicked": sent // 10, "errors": 0}
        return Reply(200, {"status": "success", "status_text": campaign["status"], "message_stats": stats})
