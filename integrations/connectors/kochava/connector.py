"""Kochava Post Install (docs/partner-apis.md section 7).

Two feeds, one request per record (Kochava has no batch endpoint), each body < 2 MB:
- events: POST {base}/track/json {"action": "event", "kochava_app_id", "kochava_device_id",
  "data": {usertime, device_ids, origination_ip, device_ua, device_ver: "", event_name, event_data}}
  streamed from audiences.Event by stream.py, next to this (a cursor over event ids);
- users ("Send Users"): IdentityLink, {"action": "identityLink", .., "data": {"identity_link": {..}}}.
  This connector sends a segment's members that way through the delivery engine; Kochava attaches
  an identity only to a device whose install it already has, so "device not found" is not a
  failure but a hold: the row is answered `held_back` and stream.py retries it at
  its next_attempt_at until the install arrives.

Mapping validation follows Amplitude's Kochava Post Install setup: Kochava Device ID and IP address
are required, and at least one of idfa, idfv, adid, android_id. A mapping value names where the value comes from in an event: a column
(device_id, user_id, ip_address, platform, ...) or user_properties.<k>, event_properties.<k>, data.<k>.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests
from rest_framework import serializers

from integrations.connectors.base import (
    Arrival,
    Batch,
    Connector,
    ConnectorError,
    Host,
    Limits,
    OutboundRequest,
    Policy,
    Rejection,
    SegmentInfo,
)
from integrations.credentials import CredentialField
from integrations.outbound import clip

DEVICE_ID_KEYS = ("idfa", "idfv", "adid", "android_id")
HELD_BACK = "held_back"  # partner_code of a row Kochava could not link yet (no install for the device)
EVENT_COLUMNS = (
    "device_id",
    "user_id",
    "ip_address",
    "platform",
    "os_name",
    "device_type",
    "country",
    "region",
    "city",
    "amplitude_id",
    "session_id",
    "event_type",
)
_SOURCE_PREFIXES = ("user_properties.", "event_properties.", "data.")
HOSTS = {"control": Host("Kochava", "https://control.kochava.com")}
DASHBOARD = "https://go.kochava.com/"  # Kochava's web dashboard (docs/partner-apis.md)


def _source_field(required: bool) -> serializers.CharField:
    extra = {} if required else {"default": ""}
    return serializers.CharField(
        required=required,
        allow_blank=not required,
        **extra,
        max_length=200,
        help_text="An event column or user_properties.<k> / event_properties.<k> / data.<k>.",
    )


class KochavaMapping(serializers.Serializer):
    kochava_device_id = _source_field(True)
    origination_ip = _source_field(True)
    idfa = _source_field(False)
    idfv = _source_field(False)
    adid = _source_field(False)
    android_id = _source_field(False)
    device_ua = _source_field(False)

    def validate(self, attrs: dict) -> dict:
        for name, source in attrs.items():
            if source and source not in EVENT_COLUMNS and not source.startswith(_SOURCE_PREFIXES):
                message = f"{source!r} is not an event column ({', '.join(EVENT_COLUMNS)}) or a properties path."
                raise serializers.ValidationError({name: [message]})
        if not any(attrs.get(key) for key in DEVICE_ID_KEYS):
            message = "Map at least one of idfa, idfv, adid, android_id."
            raise serializers.ValidationError({key: [message] for key in DEVICE_ID_KEYS})
        return attrs


class KochavaConfig(serializers.Serializer):
    app_guid = serializers.CharField(
        default="", allow_blank=True, max_length=200, help_text="Kochava App GUID; blank: the authorization's app_guid."
    )
    base_url = serializers.URLField(default=HOSTS["control"].url)
    mapping = KochavaMapping()
    send_events = serializers.BooleanField(default=True)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=255),
        default=list,
        help_text="Event types streamed to Kochava (imported or pushed).",
    )
    send_users = serializers.BooleanField(default=True, help_text="IdentityLink for people whose events are sent.")
    user_properties = serializers.ListField(
        child=serializers.CharField(max_length=200),
        default=list,
        help_text="Extra user properties sent with events and users.",
    )
    concurrency = serializers.IntegerField(default=8, min_value=1, max_value=32)
    # UNCONFIRMED how Kochava expects the optional key/secret: header names are settings.
    api_key_header = serializers.CharField(default="X-Kochava-Api-Key", max_length=64)
    api_secret_header = serializers.CharField(default="X-Kochava-Api-Secret", max_length=64)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("send_events") and not attrs.get("event_types"):
            raise serializers.ValidationError({"event_types": ["Select the event types to send (or turn events off)."]})
        return attrs


def resolve_source(event: dict, source: str) -> Any:
    """The value a mapping source names in an event dict (columns + properties JSON)."""
    if not source:
        return None
    for prefix in _SOURCE_PREFIXES:
        if source.startswith(prefix):
            return (event.get(prefix[:-1]) or {}).get(source[len(prefix) :])
    return event.get(source)


def cohort_identity(segment: SegmentInfo) -> str:
    """The IdentityLink name flagging membership of `segment` ("true" in it, "false" once left)."""
    return f"{segment.partner_name} cohort {segment.name} ({segment.external_id})"


class KochavaConnector(Connector):
    kind = "kochava"
    Config = KochavaConfig
    limits = Limits(records_per_request=1, bytes_per_request=2 * 1024 * 1024, concurrent_requests=8)
    list_style = False
    requires_device_id = True  # IdentityLink names a device: members without one are invalid rows, never sent
    deletion_note = (
        "Not asked: Kochava deletes only through its Data Subject Request API, which needs the "
        "account id, the numeric app id, a privacy API key and the device's IDFA/ADID, none of which "
        "this destination holds. Remove this person's devices at Kochava by hand."
    )
    # All optional: the App GUID may be each destination's, the key and secret are Kochava's opt-in.
    credential_fields = (
        CredentialField("app_guid", secret=False, optional=True, help="Blank: each destination names its own."),
        CredentialField("api_key", optional=True, help="Optional (Enable Authentication)."),
        CredentialField("api_secret", optional=True, help="Optional, from Kochava CS."),
    )
    hosts = HOSTS
    host_fields = ("base_url",)

    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        app = config.get("app_guid") or "of the authorization"
        return f"IdentityLink calls (and events) for members of “{segment.name}” in app {app}."

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        cohort = cohort_identity(segment)
        app = config.get("app_guid") or auth_fields.get("app_guid") or ""
        names = [("IdentityLink", "User ID"), ("IdentityLink of the segment", cohort)]
        how = [f"In Kochava, the devices of people in “{segment.name}” carry the identity “{cohort}” = true."]
        events = list(config.get("event_types") or []) if config.get("send_events", True) else []
        if events:
            names.append(("Post-install events", ", ".join(events)))
            how.append(
                "The events stream to Kochava as post-install events under their own names (the destination's "
                "Event stream section counts them): use them in Kochava's analytics and partner postbacks."
            )
        return Arrival(
            where=f"Kochava links each member's device to their User ID and to the identity “{cohort}”: "
            f"true while they are in “{segment.name}”, false once they leave"
            + (f", in app {app}" if app else "")
            + ". A link waits until Kochava has the device's install.",
            names=tuple(names),
            how=tuple(how),
            dashboard_url=DASHBOARD,
            dashboard_label="Open Kochava",
        )

    def credential_headers(self) -> frozenset[str]:
        named = (("api_key_header", "X-Kochava-Api-Key"), ("api_secret_header", "X-Kochava-Api-Secret"))
        return self.secret_headers | {(self.config.get(name) or default).lower() for name, default in named}

    def concurrent_requests(self) -> int:
        # Kochava documents no concurrency limit (only 429s for senders that go too fast), so the
        # destination's own `concurrency` setting is the cap, shared by its syncs and its event stream.
        return int(self.config.get("concurrency") or self.limits.concurrent_requests)

    @property
    def app_guid(self) -> str:
        guid = self.config.get("app_guid") or self.auth_fields.get("app_guid") or ""
        if not guid:
            raise ConnectorError(
                Policy.PERMANENT, "No Kochava App GUID: set it on the destination or its authorization."
            )
        return guid

    def track_url(self) -> str:
        return self.config.get("base_url", HOSTS["control"].url).rstrip("/") + "/track/json"

    def auth_headers(self) -> dict[str, str]:
        headers = {}
        if self.secrets.get("api_key"):
            headers[self.config.get("api_key_header") or "X-Kochava-Api-Key"] = self.secrets["api_key"]
        if self.secrets.get("api_secret"):
            headers[self.config.get("api_secret_header") or "X-Kochava-Api-Secret"] = self.secrets["api_secret"]
        return headers

    # ---- users (IdentityLink) -------------------------------------------------------------------
    def identity_link(self, device_id: str, identities: dict) -> OutboundRequest:
        body = {
            "action": "identityLink",
            "kochava_app_id": self.app_guid,
            "kochava_device_id": device_id,
            "data": {"identity_link": {k: v for k, v in identities.items() if v not in (None, "")}},
        }
        return OutboundRequest("POST", self.track_url(), body, self.auth_headers())

    def build_request(self, batch: Batch) -> OutboundRequest:
        row = batch.rows[0]  # one record per request: the engine's batches here are single rows
        chosen = self.config.get("user_properties", [])
        identities = {k: v for k, v in (row.properties or {}).items() if k in chosen}
        identities["User ID"] = row.user_id
        identities[cohort_identity(self.segment)] = "true" if row.action == "add" else "false"
        return self.identity_link(row.device_id or "", identities)

    def parse_response(self, response: requests.Response, batch: Batch) -> list[Rejection]:
        accepted, error = read_answer(response)
        if accepted:
            return []
        if "device not found" in error.lower() or "no install" in error.lower():
            reason = "Kochava has not received this device's install yet; held back and retried later."
            return [Rejection(row.seq, reason, HELD_BACK) for row in batch.rows]
        return [Rejection(row.seq, f"Kochava: {error}", "refused") for row in batch.rows]

    # ---- events ---------------------------------------------------------------------------------
    def event_record(self, event: dict) -> dict | None:
        """The /track/json body for one event dict, or None when the mapping finds no device ids."""
        mapping = self.config["mapping"]
        device_ids = {k: str(v) for k in DEVICE_ID_KEYS if (v := resolve_source(event, mapping.get(k, "")))}
        device = resolve_source(event, mapping["kochava_device_id"])
        ip = resolve_source(event, mapping["origination_ip"])
        if not device_ids or not device or not ip:
            return None
        when = event.get("event_time")
        chosen = self.config.get("user_properties", [])
        event_data = dict(event.get("event_properties") or {})
        event_data.update({k: v for k, v in (event.get("user_properties") or {}).items() if k in chosen})
        data = {
            "usertime": int(when.timestamp()) if isinstance(when, datetime) else None,
            "device_ids": device_ids,
            "origination_ip": str(ip),
            "device_ua": str(resolve_source(event, mapping.get("device_ua", "")) or "") or "unknown",
            "device_ver": "",
            "event_name": event["event_type"],
            "event_data": event_data,
        }
        if data["usertime"] is None:
            del data["usertime"]
        return {"action": "event", "kochava_app_id": self.app_guid, "kochava_device_id": str(device), "data": data}

    def send_record(self, body: dict, summary: str) -> tuple[bool, str]:
        """One event or link; (accepted, Kochava's error). ConnectorError carries the retry policy."""
        request = OutboundRequest("POST", self.track_url(), body, self.auth_headers())
        encoded = request.encode()
        if len(encoded) > self.limits.bytes_per_request:
            raise ConnectorError(Policy.TOO_LARGE, f"{len(encoded)} bytes is over Kochava's 2 MB cap")
        response = self.http.send(request, encoded, summary, hold=True)
        accepted, error = True, ""
        try:
            self.raise_for_response(response)
            accepted, error = read_answer(response)
            error = self.mask(error)  # Kochava's words, which may quote what it was sent
            return accepted, error
        finally:
            self.http.release("" if accepted else f"Kochava did not accept it: {error}")

    def test_connection(self) -> str:
        # An identityLink for a device that cannot exist: Kochava answers without linking anything.
        response = self.http.send(
            probe := self.identity_link("cohort-console-connection-test", {"test": "1"}),
            probe.encode(),
            "connection test (identityLink to an unknown device)",
        )
        self.raise_for_response(response)
        return f"Kochava answered for App GUID {self.app_guid} (HTTP {response.status_code})."


def read_answer(response: requests.Response) -> tuple[bool, str]:
    """Kochava judges success by the body: {"success": "1"} (or 1 / true)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return False, "the answer was not JSON"  # never the raw body: users read this reason
    if isinstance(body, dict) and body.get("success") in ("1", 1, True, "true"):
        return True, ""
    return False, clip(body.get("error") if isinstance(body, dict) else body, 300) or "not accepted"
