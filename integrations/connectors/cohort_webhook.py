"""Amplitude Cohort Webhooks (docs/partner-apis.md section 5), outbound.

Each call is all-enter or all-exit; message_id is derived from the run, the action and the batch's
rows, so a retry of the same batch carries the same id and the receiver can dedupe on it.
"""

from __future__ import annotations

from rest_framework import serializers

from integrations.connectors.base import Arrival, Batch, Connector, Limits, OutboundRequest, SegmentInfo
from integrations.credentials import CredentialField


class CohortWebhookConfig(serializers.Serializer):
    url = serializers.URLField()
    headers = serializers.DictField(
        child=serializers.CharField(max_length=1024),
        default=dict,
        help_text="Up to 5 custom (non-secret) headers. Put credentials in the authorization.",
    )
    batch_size = serializers.IntegerField(default=1_000, min_value=1, max_value=10_000)
    user_properties = serializers.ListField(
        child=serializers.CharField(max_length=200),
        default=list,
        help_text="Profile properties sent as each user's user_properties.",
    )

    def validate_headers(self, value: dict) -> dict:
        if len(value) > 5:
            raise serializers.ValidationError("At most 5 custom headers.")
        return value


class CohortWebhookConnector(Connector):
    kind = "cohort_webhook"
    Config = CohortWebhookConfig
    limits = Limits(records_per_request=10_000, bytes_per_request=2 * 1024 * 1024, concurrent_requests=4)
    list_style = False
    # The receiver's own header: its name is plain, its value the secret.
    credential_fields = (CredentialField("header_name", secret=False), CredentialField("header_value"))
    host_fields = ("url",)

    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        return f"POSTs of enter/exit batches for “{segment.name}” to {config.get('url', 'the webhook URL')}."

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        return Arrival(
            where=f"Your webhook {config.get('url', '')} received each entry into and exit from “{segment.name}”, "
            "in batches that are all enter or all exit.",
            names=(("Cohort name in each call", segment.name), ("Cohort id", segment.external_id)),
            how=("The receiving service decides what happens next; a retried call carries the same message_id.",),
        )

    def credential_headers(self) -> frozenset[str]:
        name = (self.auth_fields.get("header_name") or "").strip().lower()
        return self.secret_headers | {name} if name else self.secret_headers

    def auth_headers(self) -> dict[str, str]:
        name = (self.auth_fields.get("header_name") or "").strip()
        return {name: self.secrets["header_value"]} if self.secrets.get("header_value") and name else {}

    def headers(self) -> dict[str, str]:
        return {"User-Agent": "Amplitude/Webhook/1.0", **self.config.get("headers", {}), **self.auth_headers()}

    def build_request(self, batch: Batch) -> OutboundRequest:
        direction = "enter" if batch.action == "add" else "exit"
        body = {
            "cohort_name": self.segment.name,
            "cohort_id": self.segment.external_id,
            "in_cohort": batch.action == "add",
            "computed_time": str(int(self.run_started)),
            "message_id": f"cc-{self.run_id}::{direction}::{batch.key}",
            "users": [{"user_id": row.partner_id, "user_properties": row.properties or {}} for row in batch.rows],
        }
        return OutboundRequest("POST", self.config["url"], body, self.headers())

    def test_connection(self) -> str:
        probe = OutboundRequest(
            "POST", self.config["url"], {"cohort_name": "connection test", "users": []}, self.headers()
        )
        response = self.http.send(probe, probe.encode(), "connection test")
        if response.status_code in (401, 403) or response.status_code >= 500:
            self.raise_for_response(response)
        return f"Reached the webhook (HTTP {response.status_code})."
