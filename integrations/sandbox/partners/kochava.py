"""Fake Kochava server-to-server API (docs/partner-apis.md section 7).

    POST /track/json                  one record per request, action = install | event | identityLink
    POST /v1/cpi/identityLink.php     legacy IdentityLink {"kochava_app_id", "device_id": {...}, "data": {...}}

Success is {"success": "1"}; validation errors are 400 {"success": "0", "error": "..."}.
IdentityLink only attaches to a device that already has an install (``register_install`` seeds one).
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import MB, FakePartner, Reply, Request

OK = {"success": "1"}
# ASSUMPTION (undocumented): IdentityLink for an unknown device answers HTTP 200 with
# {"success": "0", "error": "device not found"}; Kochava's web SDK judges success by the body,
# so clients must check `success`, not only the status code.
DEVICE_NOT_FOUND = {"success": "0", "error": "device not found"}


def _missing(record: dict) -> str | None:
    action, data = record.get("action"), record.get("data")
    if action not in ("install", "event", "identityLink"):
        return "action must be install, event or identityLink"
    if not record.get("kochava_app_id"):
        return "kochava_app_id is required"
    if not record.get("kochava_device_id"):
        return "kochava_device_id is required"
    if not isinstance(data, dict):
        return "data is required"
    if action == "identityLink":
        return (
            None
            if isinstance(data.get("identity_link"), dict) and data["identity_link"]
            else "data.identity_link is required"
        )
    for key in ("origination_ip", "device_ua"):
        if not data.get(key):
            return f"data.{key} is required"
    if "device_ver" not in data:  # may be "" per the doc, but must be present
        return "data.device_ver is required"
    if action == "event":
        if not isinstance(data.get("device_ids"), dict) or not any(data["device_ids"].values()):
            return "data.device_ids needs at least one id"
        if not data.get("event_name"):
            return "data.event_name is required"
    return None


class KochavaFake(FakePartner):
    kind = "kochava"
    default_max_body = 2 * MB  # "requests must be smaller than 2MB"

    def __init__(
        self,
        *,
        app_ids: Iterable[str] | None = None,
        installed: Iterable[str] = (),
        reject_ids: Iterable[str] = (),
        **base: object,
    ) -> None:
        self.app_ids = set(app_ids) if app_ids else None  # None accepts any App GUID
        self.preinstalled = list(installed)  # device ids with an install from the start (and after reset)
        self.reject_ids = set(reject_ids)  # test knob: records naming these device ids get a 400
        super().__init__(**base)

    def reset_state(self) -> None:
        self.installs: dict[str, dict] = {}  # kochava_device_id -> install record
        self._aliases: dict[str, str] = {}  # idfa/adid/... value -> kochava_device_id
        self.events: list[dict] = []
        self.identities: dict[str, dict] = {}  # kochava_device_id -> linked identities
        for device in self.preinstalled:
            self.register_install(device)

    def register_install(
        self, device_id: str, *, app_id: str = "koapp-test", device_ids: dict[str, str] | None = None
    ) -> None:
        """Pre-seed an install so events/identityLinks for this device attach."""
        with self.lock:
            self.installs[device_id] = {"kochava_app_id": app_id, "data": {"device_ids": dict(device_ids or {})}}
            self._aliases.update({v: device_id for v in (device_ids or {}).values() if v})

    def summary(self) -> dict:
        return {"installs": len(self.installs), "events": len(self.events), "identities": len(self.identities)}

    def error_body(self, status: int, message: str) -> dict:
        return {"success": "0", "error": message}

    def route(self, req: Request) -> Reply:
        if req.method != "POST" or req.path not in ("/track/json", "/v1/cpi/identityLink.php"):
            return self.fault_reply(404, "not found")
        if req.body_error:
            return self.fault_reply(400, "invalid JSON")
        if isinstance(req.body, list):
            return self.fault_reply(400, "one record per request; batches are not supported")
        if not isinstance(req.body, dict):
            return self.fault_reply(400, "body must be a JSON object")
        if self.app_ids is not None and req.body.get("kochava_app_id") not in self.app_ids:
            return self.fault_reply(400, "invalid kochava_app_id")
        if req.path == "/v1/cpi/identityLink.php":
            return self._legacy_identity_link(req.body)
        if self.reject_ids and str(req.body.get("kochava_device_id")) in self.reject_ids:
            return self.fault_reply(400, "invalid kochava_device_id")
        if problem := _missing(req.body):
            return self.fault_reply(400, problem)
        record, device = req.body, req.body["kochava_device_id"]
        if record["action"] == "install":
            ids = record["data"].get("device_ids")
            self.register_install(
                device, app_id=record["kochava_app_id"], device_ids=ids if isinstance(ids, dict) else None
            )
            self.installs[device] = record  # keep the full install as sent
        elif record["action"] == "event":
            self.events.append(record)
        else:
            return self._link(device, record["data"]["identity_link"])
        return Reply(200, OK)

    def _legacy_identity_link(self, body: dict) -> Reply:
        ids = body.get("device_id")
        if not body.get("kochava_app_id") or not isinstance(ids, dict) or not isinstance(body.get("data"), dict):
            return self.fault_reply(400, "kochava_app_id, device_id{} and data{} are required")
        return self._link(self._resolve([body.get("kochava_device_id"), *ids.values()]), body["data"])

    def _resolve(self, candidates: list) -> str | None:
        """Map any known id (Kochava device id, idfa, adid, ...) to the installed device."""
        for value in candidates:
            device = self._aliases.get(value, value) if isinstance(value, str) else None
            if device in self.installs:
                return device
        return None

    def _link(self, device: str | None, identities: dict) -> Reply:
        if device not in self.installs:
            return Reply(200, dict(DEVICE_NOT_FOUND))
        self.identities.setdefault(device, {}).update(identities)
        return Reply(200, OK)
