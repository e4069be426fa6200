"""Fake CleverTap Upload API, Delete User Profile API and Campaign API (docs/partner-apis.md sections 6 and 9;
the campaign endpoints live in clevertap_campaigns.py).

    POST /1/upload  X-CleverTap-Account-Id / X-CleverTap-Passcode  {"d": [record, ...]}
    POST /1/delete/profiles.json  same headers  {"identity": [...]} or {"guid": [...]}

Answers like the real recordings: HTTP 200 even when records fail, each failure listed in
``unprocessed`` with the record re-serialised as a JSON *string*. Region routing: run one server
per region (the Host header is ignored, so any region hostname can point here).
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

from .base import MB, FakePartner, Reply, Request
from .clevertap_campaigns import DEFAULT_RATES, CampaignApiMixin

IDENTIFIERS = ("identity", "objectId", "FBID", "GPID")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")  # E.164
# ASSUMPTION: CleverTap does not publish what makes an objectId invalid (526); we reject
# non-strings, whitespace and absurd lengths, which catches the usual client mistakes.
_OBJECT_ID = re.compile(r"^[^\s]{1,128}$")


def record_error(record: object) -> tuple[int, str] | None:
    """(code, message) for a record CleverTap would skip, per its documented per-record codes."""
    if not isinstance(record, dict) or record.get("type") not in ("profile", "event", "token"):
        return 524, "Record type should be either event or profile"
    if not any(record.get(key) not in (None, "") for key in IDENTIFIERS):
        return 523, "'identity' or 'objectId' or 'FBID' or 'GPID' is necessary to upload a record"
    if "objectId" in record and not (isinstance(record["objectId"], str) and _OBJECT_ID.match(record["objectId"])):
        return 526, "Invalid objectId"
    ts = record.get("ts")
    # Epoch *seconds*; values >= 1e11 are almost surely milliseconds (a classic client bug).
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or not 0 < ts < 10**11):
        return 525, "Timestamp is not in epoch seconds format"
    if record["type"] == "event":
        if not isinstance(record.get("evtName"), str) or not record["evtName"]:
            return 509, "Event name is mandatory"
        if not isinstance(record.get("evtData", {}), dict):
            return 512, "Invalid event structure"
    if record["type"] == "profile":
        data = record.get("profileData", {})
        if not isinstance(data, dict):
            return 512, "Invalid profile structure"
        if "Email" in data and not _EMAIL.match(str(data["Email"])):
            return 515, "Invalid email address"
        if "Phone" in data and not _PHONE.match(str(data["Phone"])):
            return 516, "Phone number should be in E.164 format, e.g. +14155552671"
        if "Gender" in data and data["Gender"] not in ("M", "F"):
            return 514, "Invalid gender value"
    return None


class CleverTapFake(CampaignApiMixin, FakePartner):
    kind = "clevertap"
    default_max_body = 2 * MB  # Amplitude's CleverTap destination notes a 2 MB cap
    default_concurrency_cap = 15  # per account (older docs: 3)
    concurrency_headers: ClassVar[dict[str, str]] = {}  # CleverTap sends no Retry-After

    def __init__(
        self,
        *,
        account_id: str = "TEST-ACCOUNT",
        passcode: str = "TEST-PASSCODE",
        max_records: int = 1000,
        status_style: str = "success",
        region: str = "eu1",
        reject_ids: list[str] | None = None,
        keep_data: bool = True,
        campaign_rates: dict | None = None,
        max_send_ids: int = 1000,
        **base: object,
    ) -> None:
        # status_style "success": always "success" (as real 2017+ recordings show); "strict":
        # "partial"/"fail" when some/all records fail, as RudderStack expects some accounts to answer.
        self.account_id, self.passcode, self.max_records = account_id, passcode, max_records
        self.status_style, self.region = status_style, region
        # Test knob: records for these identities/objectIds fail with 555 (CleverTap's "misc server error").
        self.reject_ids = set(reject_ids or ())
        self.keep_data = keep_data  # False (benchmarks): count records, keep no profiles in memory
        # Campaign API requests per second by endpoint group (create, send, other); 0 = unlimited.
        self.campaign_rates = {**DEFAULT_RATES, **(campaign_rates or {})}
        self.max_send_ids = max_send_ids
        super().__init__(**base)

    def reset_state(self) -> None:
        self.profiles: dict[str, dict] = {}  # identity or objectId -> merged profileData
        self.events: list[dict] = []
        self.tokens: list[dict] = []
        self.stored = 0
        self.deleted: list[str] = []  # identities and guids the delete call was given, in order
        self.reset_campaigns()

    def summary(self) -> dict:
        return {
            "region": self.region,
            "profiles": len(self.profiles),
            "events": len(self.events),
            "records_stored": self.stored,
            **self.campaign_summary(),
        }

    def error_body(self, status: int, message: str) -> dict:
        return {"status": "fail", "error": message, "code": status}

    def concurrency_slot(self, req: Request) -> tuple[str, int | None]:
        return req.header("x-clevertap-account-id") or "", self.faults.concurrency_cap

    def route(self, req: Request) -> Reply | None:
        if self.is_campaign_path(req.path) and req.method == "POST":
            if (req.header("x-clevertap-account-id"), req.header("x-clevertap-passcode")) != (
                self.account_id,
                self.passcode,
            ):
                return self.fault_reply(401, "Account ID is not valid")
            return self.campaign_route(req)
        if req.path not in ("/1/upload", "/1/delete/profiles.json"):
            return self.fault_reply(404, "Resource not found")
        if req.method != "POST":
            return self.fault_reply(405, "Method not allowed")
        if (req.header("x-clevertap-account-id"), req.header("x-clevertap-passcode")) != (
            self.account_id,
            self.passcode,
        ):
            return self.fault_reply(401, "Account ID is not valid")
        if req.path == "/1/delete/profiles.json":
            return self._delete(req)
        records = req.body.get("d") if isinstance(req.body, dict) else None
        if req.body_error or not isinstance(records, list):
            return self.fault_reply(400, "Payload must be a JSON object with a 'd' array")
        if len(records) > self.max_records:
            return self.fault_reply(400, f"Too many records. Max allowed per request: {self.max_records}")
        unprocessed = []
        for number, record in enumerate(records, start=1):  # ASSUMPTION: 1-based, as the recording reads
            problem = record_error(record)
            if (
                problem is None
                and isinstance(record, dict)
                and self.reject_ids & {str(record.get(k)) for k in IDENTIFIERS if record.get(k) not in (None, "")}
            ):
                problem = (555, "Record could not be processed")
            if problem:
                code, message = problem
                unprocessed.append(
                    {
                        "status": "fail",
                        "code": code,
                        "record": json.dumps(record),
                        "error": f"{message}. Skipped record number : {number}",
                    }
                )
            elif req.query.get("dryRun") != "1":
                self._store(record)
        processed = len(records) - len(unprocessed)
        status = "success"
        if self.status_style == "strict" and unprocessed:
            status = "partial" if processed else "fail"
        return Reply(200, {"status": status, "processed": processed, "unprocessed": unprocessed})

    def _delete(self, req: Request) -> Reply:
        """identity (custom user identities) or guid (CleverTap IDs; our objectId), one string or a list
        of at most 100, never both. ASSUMPTION: the documentation shows no answer body; the fake
        answers {"status": "success"} like the upload call, also for ids it does not know."""
        body = req.body if isinstance(req.body, dict) else {}
        given = [name for name in ("identity", "guid") if body.get(name) not in (None, "", [])]
        if req.body_error or len(given) != 1:
            return self.fault_reply(400, "Pass either identity or guid")
        values = body[given[0]] if isinstance(body[given[0]], list) else [body[given[0]]]
        if len(values) > 100 or not all(isinstance(v, str) and v for v in values):
            return self.fault_reply(400, "At most 100 non-empty string values per request")
        for value in values:
            self.deleted.append(value)
            self.profiles.pop(value, None)
        self.events = [event for event in self.events if event["key"] not in values]
        return Reply(200, {"status": "success"})

    def _store(self, record: dict) -> None:
        self.stored += 1
        if not self.keep_data:
            return
        key = str(next(record[k] for k in IDENTIFIERS if record.get(k) not in (None, "")))
        if record["type"] == "profile":
            self.profiles.setdefault(key, {}).update(record.get("profileData", {}))
        elif record["type"] == "event":
            self.events.append(
                {"key": key, "evtName": record["evtName"], "evtData": record.get("evtData", {}), "ts": record.get("ts")}
            )
        else:
            self.tokens.append({"key": key, **record.get("tokenData", {})})
