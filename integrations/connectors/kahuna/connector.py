"""Kahuna (docs/partner-apis.md section 8).

Segment sync = user attributes: POST {base}/api/userattributes?env=p|s, Basic secret_key:api_key,
{"user_attributes_array": [{"target": {credentials}, "attributes": {..}}]}, at most 100 users a call.

Credential sync as Kahuna's guide asks: every user carries install_token = the device id; a known
user also carries the mapped identity under the configured Kahuna credential (username, email,
fbid or user_id); an anonymous user carries install_token only.

Kahuna refuses a whole call (400 with {"success": false, "error": ..}) when one target is bad, so
the engine bisects to the bad row. "Export to Kahuna" (Adaptive campaigns) is in export.py, next to this.
"""

from __future__ import annotations

import base64

import requests
from rest_framework import serializers

from integrations.connectors.base import (
    Arrival,
    Batch,
    Connector,
    Host,
    Limits,
    OutboundRequest,
    OutRow,
    RetryRule,
    SegmentInfo,
)
from integrations.credentials import CredentialField

ENVIRONMENTS = {"p": "Production", "s": "Staging (Sandbox)"}
HOSTS = {"tap-nexus": Host("Kahuna", "https://tap-nexus.appspot.com")}
CREDENTIALS = ("username", "email", "fbid", "user_id")


class KahunaConfig(serializers.Serializer):
    environment = serializers.ChoiceField(choices=list(ENVIRONMENTS.items()), default="p")
    base_url = serializers.URLField(default=HOSTS["tap-nexus"].url)
    user_credential = serializers.ChoiceField(
        choices=[*CREDENTIALS, "fb_id"],
        default="user_id",
        help_text="The Kahuna credential the sync's user id fills (Amplitude user_id must equal it).",
    )
    membership_attribute = serializers.CharField(
        default="", allow_blank=True, max_length=120, help_text="Blank: 'amplitude_cohort_<segment id>'."
    )
    user_properties = serializers.ListField(child=serializers.CharField(max_length=120), default=list)
    batch_size = serializers.IntegerField(default=100, min_value=1, max_value=100)
    # UNCONFIRMED parts of Kahuna's API are settings, not constants (docs/partner-apis.md section 8).
    campaigns_path = serializers.CharField(default="/api/campaigns")
    populate_path = serializers.CharField(default="/api/campaign/populate")
    populate_users_key = serializers.CharField(default="user_list", help_text="Key of the user list in populate.")
    populate_batch_size = serializers.IntegerField(default=50_000, min_value=1, max_value=100_000)
    export_user_id_kind = serializers.CharField(
        default="user_id", max_length=64, help_text="Export to Kahuna: identity kind of the credential."
    )
    export_device_id_kind = serializers.CharField(
        default="device_id", max_length=64, help_text="Export to Kahuna: identity kind of install_token."
    )

    def validate_user_credential(self, value: str) -> str:
        return "fbid" if value == "fb_id" else value  # Kahuna's key is "fbid"; the console says fb_id


def membership_attribute(config: dict, segment: SegmentInfo) -> str:
    """The user attribute flagging membership of `segment` ("true" in it, "false" once left)."""
    return config.get("membership_attribute") or f"amplitude_cohort_{segment.external_id}"


class KahunaConnector(Connector):
    kind = "kahuna"
    Config = KahunaConfig
    # 100 users per user-attributes call (docs); populate has its own cap of 10 simultaneous calls.
    limits = Limits(records_per_request=100, bytes_per_request=2 * 1024 * 1024, concurrent_requests=4)
    # Export to Kahuna (export.py) has no waiting state to park in: a long Retry-After on a
    # populate call is cut to the short wait and the call tried again (segment syncs park as usual).
    export_retry_rule = RetryRule(park_long_waits=False)
    # Basic secret_key:api_key on every call.
    credential_fields = (CredentialField("secret_key"), CredentialField("api_key"))
    hosts = HOSTS
    host_fields = ("base_url",)

    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        return f"User attribute updates for “{segment.name}” in the {config.get('environment', 'p')} environment."

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        attribute = membership_attribute(config, segment)
        environment = ENVIRONMENTS.get(config.get("environment", "p"), "Production")
        return Arrival(
            where=f'Each member\'s Kahuna user has the attribute “{attribute}” = "true" while they are in '
            f'“{segment.name}” and "false" once they leave, in Kahuna\'s {environment} environment.',
            names=(("User attribute", attribute), ("Value of members", "true")),
            how=(
                f"In Kahuna, target the campaign at users whose attribute “{attribute}” is true.",
                "For an Adaptive campaign, use Export to Kahuna on the segment's page: it fills the campaign itself.",
            ),
        )

    def url(self, path: str) -> str:
        return f"{self.config['base_url'].rstrip('/')}{path}?env={self.config.get('environment', 'p')}"

    def auth_headers(self) -> dict[str, str]:
        token = f"{self.secrets.get('secret_key', '')}:{self.secrets.get('api_key', '')}"
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

    def target(self, user_id: str | None, device_id: str | None) -> dict:
        """Kahuna credentials of one person (used by the sync and by Export to Kahuna)."""
        target = {"install_token": device_id} if device_id else {}
        if user_id:
            target[self.config.get("user_credential", "user_id")] = user_id
        return target

    @property
    def membership_attribute(self) -> str:
        return membership_attribute(self.config, self.segment)

    def item(self, row: OutRow) -> dict:
        chosen = self.config.get("user_properties", [])
        # Kahuna attributes are strings: "true"/"false" is what its segment builder filters on.
        attributes = {k: str(v) for k, v in (row.properties or {}).items() if k in chosen}
        attributes[self.membership_attribute] = "true" if row.action == "add" else "false"
        return {"target": self.target(row.user_id, row.device_id), "attributes": attributes}

    def build_request(self, batch: Batch) -> OutboundRequest:
        return OutboundRequest(
            "POST",
            self.url("/api/userattributes"),
            {"user_attributes_array": [self.item(row) for row in batch.rows]},
            self.auth_headers(),
        )

    def error_message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        if isinstance(body, dict) and body.get("error"):
            return f"{body['error']} (error_code {body.get('error_code', response.status_code)})"
        return super().error_message(response)

    def test_connection(self) -> str:
        # An empty attributes call is refused with 400 only after the Basic credentials pass.
        probe = OutboundRequest(
            "POST", self.url("/api/userattributes"), {"user_attributes_array": []}, self.auth_headers()
        )
        response = self.http.send(probe, probe.encode(), "connection test (empty user attributes)")
        if response.status_code in (401, 403) or response.status_code >= 500 or response.status_code == 429:
            self.raise_for_response(response)
        return f"Kahuna accepted the secret key and API key ({ENVIRONMENTS[self.config.get('environment', 'p')]})."
