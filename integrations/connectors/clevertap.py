"""CleverTap Upload API (docs/partner-apis.md section 6).

    POST https://<region>.api.clevertap.com/1/upload   X-CleverTap-Account-Id / X-CleverTap-Passcode
    {"d": [{"type": "profile", "identity"|"objectId": .., "profileData": {..}},
           {"type": "event", "identity"|"objectId": .., "evtName": "Partner Sync", "evtData": {..}}, ...]}

Identity (scenarios 1-3 of CleverTap's Amplitude guide): the sync job's user id fills `identity`
(CleverTap matches it against its own identities); a member with no user id goes with its device id
as the CleverTap ID (`objectId`), which creates an anonymous profile. Each member becomes a profile record (segment
flag + selected user properties) and a "Partner Sync" event carrying the ledger's properties, so
CleverTap can target on it exactly as it does for Amplitude's own sync.

CleverTap answers 200 even when records fail: failures are in `unprocessed`, each naming its
1-based record number ("Skipped record number : N") and echoing the record as a JSON string.
"""

from __future__ import annotations

import json
import re

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
    OutRow,
    Policy,
    Rejection,
    SegmentInfo,
)
from integrations.credentials import CredentialField

# CleverTap's regional hosts by region code; "eu1" is Europe, the default, served from api.clevertap.com.
HOSTS = {
    "eu1": Host("Europe (default)", "https://api.clevertap.com"),
    "in1": Host("India", "https://in1.api.clevertap.com"),
    "aps3": Host("Indonesia", "https://aps3.api.clevertap.com"),
    "mec1": Host("Middle East (UAE)", "https://mec1.api.clevertap.com"),
    "sg1": Host("Singapore", "https://sg1.api.clevertap.com"),
    "sk1": Host("South Korea", "https://sk1.api.clevertap.com"),
    "us1": Host("United States", "https://us1.api.clevertap.com"),
}
REGIONS = {code: host.label for code, host in HOSTS.items()}
MAX_KEY_LENGTH = 120  # CleverTap's cap on profile/event property keys
DELETE_PER_REQUEST = 100  # values per delete call, for identity and for guid alike
_RECORD_NUMBER = re.compile(r"record number\s*:\s*(\d+)", re.IGNORECASE)


# The dashboard of each region (eu1 is Europe's; UNCONFIRMED beyond the pattern: docs/partner-apis.md).
DASHBOARD = "https://{region}.dashboard.clevertap.com/"


def membership_key(config: dict, segment: SegmentInfo) -> str:
    """The profile property flagging membership of `segment` (true in it, false once left)."""
    key = config.get("membership_property") or f"[{segment.partner_name}] {segment.name}: {segment.external_id}"
    return key[:MAX_KEY_LENGTH]


def region_base_url(region: str) -> str:
    # A wrong regional host answers like bad credentials (401), so the region is chosen from the list.
    host = HOSTS.get(region or "eu1")
    if host is None:
        raise ConnectorError(Policy.PERMANENT, f"Unknown CleverTap region {region!r}; choose from {sorted(HOSTS)}.")
    return host.url


class CleverTapConfig(serializers.Serializer):
    # Asked once, here: the region of the CleverTap account (its dashboard's URL names it).
    region = serializers.ChoiceField(
        choices=list(REGIONS.items()), default="eu1", help_text="Where the CleverTap account lives."
    )
    base_url = serializers.URLField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Operators only: a host allowed by OUTBOUND_ALLOWED_NETWORKS (a sandbox, a proxy); blank: the region's.",
    )
    send_profile = serializers.BooleanField(default=True, help_text="Profile record: segment flag + user properties.")
    send_partner_sync_event = serializers.BooleanField(default=True, help_text="The 'Partner Sync' event per change.")
    membership_property = serializers.CharField(
        default="",
        allow_blank=True,
        max_length=MAX_KEY_LENGTH,
        help_text="Profile key of the segment flag; blank: '[<partner>] <segment name>: <id>'.",
    )
    user_properties = serializers.ListField(
        child=serializers.CharField(max_length=MAX_KEY_LENGTH),
        default=list,
        help_text="Profile properties sent with each member.",
    )
    batch_size = serializers.IntegerField(default=1000, min_value=2, max_value=1000, help_text="Records per call.")

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("send_profile") and not attrs.get("send_partner_sync_event"):
            raise serializers.ValidationError({"send_profile": ["Send the profile, the Partner Sync event, or both."]})
        return attrs


class CleverTapConnector(Connector):
    kind = "clevertap"
    Config = CleverTapConfig
    # 1,000 records per call and 15 uploads in flight per account (docs); 2 MB per request (Amplitude's note).
    limits = Limits(records_per_request=1000, bytes_per_request=2 * 1024 * 1024, concurrent_requests=15)
    list_style = False  # every call raises Partner Sync events at CleverTap: a re-send is visible
    # The region is the destination's (a choice), not typed here.
    credential_fields = (CredentialField("account_id", secret=False), CredentialField("passcode"))
    secret_headers = frozenset({"x-clevertap-passcode"})
    hosts = HOSTS
    host_fields = ("region", "base_url")

    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        event = " and a Partner Sync event per change" if config.get("send_partner_sync_event", True) else ""
        return f"Profile uploads flagging membership of “{segment.name}”{event}."

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        key = membership_key(config, segment)
        where, names, how = [], [], []
        if config.get("send_profile", True):
            where.append(
                f"Each member's CleverTap profile has the property “{key}”: true while they are in "
                f"“{segment.name}”, false once they leave."
            )
            names.append(("Profile property", key))
            how.append(f"For a CleverTap segment of the people in it now: the profile property “{key}” is true.")
        if config.get("send_partner_sync_event", True):
            where.append("Each entry and exit is also a “Partner Sync” event on the person's profile.")
            names += [
                ("Event", "Partner Sync"),
                ("Event property “Partner Segment Name”", segment.name),
                ("Event property “Action”", "Added (entered) or Removed (left)"),
            ]
            how.append(
                f"For a campaign as people enter: trigger on the event “Partner Sync” where Partner Segment "
                f"Name is “{segment.name}” and Action is Added (Removed for people leaving)."
            )
        region = config.get("region") or "eu1"
        return Arrival(
            where=" ".join(where),
            names=tuple(names),
            how=tuple(how),
            dashboard_url=DASHBOARD.format(region=region if region in HOSTS else "eu1"),
            dashboard_label="Open CleverTap",
        )

    @classmethod
    def resend_note(cls, rows: int, config: dict) -> str:
        # CleverTap has no idempotency key: every re-sent row is a second event on the profile.
        if config.get("send_partner_sync_event", True):
            return f"up to {rows:,} people may have received a second Partner Sync event"
        return f"up to {rows:,} profiles may have been uploaded twice (same values: no change)"

    @property
    def records_per_row(self) -> int:
        return int(self.config.get("send_profile", True)) + int(self.config.get("send_partner_sync_event", True))

    def records_per_request(self) -> int:
        # The engine counts rows; CleverTap counts records (a row is a profile and/or an event).
        records = min(self.limits.records_per_request, int(self.config.get("batch_size") or 1000))
        return max(1, records // self.records_per_row)

    def concurrency_key(self, destination_id: int) -> str:
        # CleverTap's 15 concurrent uploads are per account: two destinations (or syncs) on one
        # account share one cap.
        account = str(self.auth_fields.get("account_id") or "").strip()
        return f"clevertap:{account}" if account else super().concurrency_key(destination_id)

    def api_url(self, path: str) -> str:
        base = self.config.get("base_url") or region_base_url(self.config.get("region", ""))
        return base.rstrip("/") + path

    def upload_url(self) -> str:
        return self.api_url("/1/upload")

    def auth_headers(self) -> dict[str, str]:
        return {
            "X-CleverTap-Account-Id": str(self.auth_fields.get("account_id", "")),
            "X-CleverTap-Passcode": str(self.secrets.get("passcode", "")),
            "Content-Type": "application/json; charset=utf-8",
        }

    @property
    def membership_key(self) -> str:
        return membership_key(self.config, self.segment)

    def partner_sync_properties(self, action: str) -> dict:
        # The ledger row's "Partner Sync" properties (audiences.MembershipChange.partner_sync_properties);
        # Source is the partner the segment came from, as CleverTap shows for Amplitude ("CT Source").
        return {
            "Partner Segment Name": self.segment.name,
            "Action": "Added" if action == "add" else "Removed",
            "Partner Segment ID": self.segment.external_id,
            "Source": self.segment.partner_name,
            "Partner Name": self.segment.partner_name,
        }

    def records(self, row: OutRow) -> list[dict]:
        who = {"identity": row.user_id} if row.user_id else {"objectId": row.device_id}
        ts = int(self.run_started)  # epoch seconds: CleverTap rejects milliseconds (code 525)
        out = []
        if self.config.get("send_profile", True):
            selected = {k: v for k, v in (row.properties or {}).items() if k in self.config.get("user_properties", [])}
            out.append(
                {
                    "type": "profile",
                    **who,
                    "ts": ts,
                    "profileData": {**selected, self.membership_key: row.action == "add"},
                }
            )
        if self.config.get("send_partner_sync_event", True):
            out.append(
                {
                    "type": "event",
                    **who,
                    "ts": ts,
                    "evtName": "Partner Sync",
                    "evtData": self.partner_sync_properties(row.action),
                }
            )
        return out

    def build_request(self, batch: Batch) -> OutboundRequest:
        return OutboundRequest(
            "POST", self.upload_url(), {"d": [r for row in batch.rows for r in self.records(row)]}, self.auth_headers()
        )

    def parse_response(self, response: requests.Response, batch: Batch) -> list[Rejection]:
        try:
            body = response.json()
        except ValueError:
            raise ConnectorError(
                Policy.TRANSIENT,
                f"CleverTap answered HTTP {response.status_code} without JSON.",
                status=response.status_code,
            ) from None
        unprocessed = body.get("unprocessed") or [] if isinstance(body, dict) else []
        if not unprocessed:
            if isinstance(body, dict) and body.get("status") == "fail":  # nothing listed, yet nothing taken
                raise ConnectorError(
                    Policy.REJECTED,
                    f"CleverTap: {body.get('error') or 'upload failed'}",
                    status=response.status_code,
                    code=str(body.get("code") or ""),
                )
            return []
        per_row = self.records_per_row
        by_seq: dict[int, Rejection] = {}
        for item in unprocessed:
            index = self._row_index(item, batch, per_row)
            if index is None:
                continue
            seq = batch.rows[index].seq
            reason = f"CleverTap {item.get('code', '')}: {item.get('error') or 'record not processed'}".strip()
            by_seq.setdefault(seq, Rejection(seq, reason, str(item.get("code") or "")))
        return list(by_seq.values())

    @staticmethod
    def _row_index(item: dict, batch: Batch, per_row: int) -> int | None:
        """The row a failed record belongs to: by its record number, else by its echoed identifier."""
        match = _RECORD_NUMBER.search(str(item.get("error") or ""))
        if match and 1 <= int(match.group(1)) <= len(batch.rows) * per_row:
            return (int(match.group(1)) - 1) // per_row
        try:
            record = json.loads(item.get("record") or "{}")
        except (TypeError, ValueError):
            return None
        for index, row in enumerate(batch.rows):
            if (row.user_id and record.get("identity") == row.user_id) or (
                not row.user_id and record.get("objectId") == row.device_id
            ):
                return index
        return None

    deletion_api = True

    def delete_people(self, identities: list[str], device_ids: list[str]) -> str:
        # POST /1/delete/profiles.json with {"identity": [...]} or {"guid": [...]}, never both in one
        # call (400), at most 100 values each (docs/partner-apis.md). A device id sent as objectId is
        # the profile's CleverTap ID, which the delete call names guid.
        asked = 0
        for name, values in (("identity", identities), ("guid", device_ids)):
            for start in range(0, len(values), DELETE_PER_REQUEST):
                chunk = values[start : start + DELETE_PER_REQUEST]
                response = self.post_json(
                    self.api_url("/1/delete/profiles.json"), {name: chunk}, f"erasure: delete {len(chunk)} by {name}"
                )
                try:
                    body = response.json()
                except ValueError:
                    body = {}
                if isinstance(body, dict) and body.get("status") == "fail":
                    raise ConnectorError(
                        Policy.REJECTED,
                        f"CleverTap: {body.get('error') or 'deletion refused'}",
                        code=str(body.get("code") or ""),
                    )
                asked += len(chunk)
        return f"CleverTap accepted the deletion ({asked} profile id{'s' if asked != 1 else ''})."

    def test_connection(self) -> str:
        # An empty upload proves the host, the account id and the passcode without writing anything.
        probe = OutboundRequest("POST", self.upload_url() + "?dryRun=1", {"d": []}, self.auth_headers())
        response = self.http.send(probe, probe.encode(), "connection test (empty upload)")
        self.raise_for_response(response)
        return f"CleverTap accepted the account id and passcode ({self.upload_url().split('/')[2]})."


# ---- Campaign API (docs/partner-apis.md section 6, "Campaigns"; used by the campaigns app) -------------
#
# create.json and the targeted sends are NOT idempotent: every call that reached CleverTap makes a
# campaign. Nothing here retries them; campaigns.engine decides, after looking the campaign up by the
# marker in its name (list.json) when an answer was lost.

TARGETED_SEND_PATH = "/1/send/{mode}.json"  # mode: push, webpush, email, sms, whatsapp
TARGETED_SEND_MAX_IDS = 1000  # ids per targeted send (CleverTap's cap; UNCONFIRMED, configurable)


def _answer(connector: CleverTapConnector, response: requests.Response) -> dict:
    """The JSON body of a 2xx answer; a refusal inside a 200 ({"status": "fail"}) raises REJECTED."""
    connector.raise_for_response(response)
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError(
            Policy.TRANSIENT,
            f"CleverTap answered HTTP {response.status_code} without JSON.",
            status=response.status_code,
        ) from None
    if not isinstance(body, dict):
        raise ConnectorError(Policy.TRANSIENT, "CleverTap answered with something other than a JSON object.")
    if body.get("status") == "fail":
        raise ConnectorError(
            Policy.REJECTED,
            f"CleverTap: {clip_text(body.get('error') or 'refused')}",
            status=response.status_code,
            code=str(body.get("code") or ""),
        )
    return body


def clip_text(value: object, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def estimate_total(body: dict) -> int:
    """estimate_only answers with counts per platform ({"estimates": {"android": n, "ios": n}}) or a
    single number; the reach is their sum."""
    estimates = body.get("estimates", body.get("estimate"))
    if isinstance(estimates, dict):
        return sum(int(v) for v in estimates.values() if isinstance(v, int | float))
    if isinstance(estimates, int | float):
        return int(estimates)
    raise ConnectorError(Policy.TRANSIENT, "CleverTap's estimate answer had no estimate in it.")


class CleverTapCampaigns:
    """CleverTap's Campaign API for one destination: estimate, create, list, stop, report, and the
    targeted send by identity/objectId. Same credentials, host and outgoing-request policy as the
    uploads; every call is logged like a sync's (summaries; the raw start for ops)."""

    def __init__(self, connector: CleverTapConnector) -> None:
        self.connector = connector

    def _post(self, path: str, payload: dict, summary: str) -> tuple[dict, str]:
        """(parsed answer, raw start of it) — the raw text is for ops in the admin only."""
        c = self.connector
        request = OutboundRequest("POST", c.api_url(path), payload, c.auth_headers())
        response = c.http.send(request, request.encode(), summary)
        raw = c.http.mask(response.text[:2000]) if response is not None else ""
        try:
            return _answer(c, response), raw
        except ConnectorError as exc:
            exc.raw = raw  # for the enrollment's or launch's ops-only record
            raise

    @staticmethod
    def audience(membership_property: str) -> dict:
        """Who: the profiles the syncs flagged as members (the segment flag, With user properties)."""
        return {
            "common_profile_properties": {
                "profile_fields": [{"name": membership_property, "operator": "equals", "value": True}]
            }
        }

    def estimate(self, payload: dict) -> int:
        body, _ = self._post("/1/targets/create.json", {**payload, "estimate_only": True}, "campaign estimate")
        return estimate_total(body)

    def create(self, payload: dict) -> tuple[dict, str]:
        return self._post("/1/targets/create.json", payload, f"create campaign {payload.get('name', '')[:80]}")

    def list(self, day_from: int, day_to: int) -> list[dict]:
        body, _ = self._post("/1/targets/list.json", {"from": day_from, "to": day_to}, "list campaigns")
        targets = body.get("targets") or []
        return [t for t in targets if isinstance(t, dict)]

    def stop(self, campaign_id: str) -> tuple[dict, str]:
        return self._post("/1/targets/stop.json", {"id": int(campaign_id)}, f"stop campaign {campaign_id}")

    def report(self, campaign_id: str) -> dict:
        body, _ = self._post("/1/targets/result.json", {"id": int(campaign_id)}, f"campaign report {campaign_id}")
        return body

    def targeted_send(self, mode: str, payload: dict) -> tuple[dict, str]:
        count = sum(len(v) for v in (payload.get("to") or {}).values() if isinstance(v, list))
        return self._post(TARGETED_SEND_PATH.format(mode=mode), payload, f"targeted {mode} to {count}")
