"""Amplitude's list-based cohort sync contract (docs/partner-apis.md section 3), outbound.

POST {base}/lists once (first sync) -> the list id at a configurable JSON path; then
POST {base}/lists/{list_id}/add|remove with {"userIds": [...], "context": {...}}.
"""

from __future__ import annotations

import requests
from rest_framework import serializers

from integrations.connectors.base import (
    AmplitudeAuthConfig,
    AmplitudeContractConnector,
    Arrival,
    Batch,
    ConnectorError,
    Limits,
    OutboundRequest,
    Policy,
    Rejection,
    SegmentInfo,
    amplitude_context,
)


class ListApiConfig(AmplitudeAuthConfig):
    base_url = serializers.URLField()
    create_path = serializers.CharField(default="/lists")
    add_path = serializers.CharField(default="/lists/{list_id}/add")
    remove_path = serializers.CharField(default="/lists/{list_id}/remove")
    list_id_path = serializers.CharField(default="listId", help_text="JSON path (dotted) of the id in the answer.")
    batch_size = serializers.IntegerField(default=10_000, min_value=1, max_value=10_000)


def list_name(segment: SegmentInfo) -> str:
    return f"[{segment.partner_name}] {segment.name}: {segment.external_id}"


def dig(body: object, path: str) -> object:
    for key in path.split("."):
        body = body.get(key) if isinstance(body, dict) else None
    return body


class ListApiConnector(AmplitudeContractConnector):
    kind = "list_api"
    Config = ListApiConfig
    limits = Limits(records_per_request=10_000, bytes_per_request=2 * 1024 * 1024, concurrent_requests=4)
    host_fields = ("base_url",)

    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        return (
            f"A list named “{list_name(segment)}”, created on the first sync (never twice); "
            "members are added to and removed from it."
        )

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        list_id = partner_state.get("list_id")
        return Arrival(
            where=f"The partner's list “{list_name(segment)}”"
            + (f" (list id {list_id})" if list_id else "")
            + " holds the segment's members: added as they enter, removed as they leave.",
            names=(("List", list_name(segment)),) + ((("List id", str(list_id)),) if list_id else ()),
            how=("Use that list wherever the partner's tool picks an audience.",),
        )

    def url(self, path: str) -> str:
        return self.config["base_url"].rstrip("/") + path.format(list_id=self.partner_state.get("list_id", ""))

    def prepare(self) -> dict:
        if self.partner_state.get("list_id"):
            return self.partner_state  # created on an earlier run: never create a second list
        name = list_name(self.segment)
        response = self.post_json(
            self.url(self.config["create_path"]),
            {"name": name, "context": amplitude_context()},
            f"create list {name!r}",
        )
        list_id = dig(response.json(), self.config["list_id_path"])
        if list_id in (None, ""):
            raise ConnectorError(Policy.PERMANENT, f"No list id at {self.config['list_id_path']!r} in the answer.")
        self.partner_state = {**self.partner_state, "list_id": str(list_id), "list_name": name}
        return self.partner_state

    def build_request(self, batch: Batch) -> OutboundRequest:
        path = self.config["add_path"] if batch.action == "add" else self.config["remove_path"]
        body = {"userIds": [row.partner_id for row in batch.rows], "context": amplitude_context()}
        return OutboundRequest("POST", self.url(path), body, self.auth_headers())

    def parse_response(self, response: requests.Response, batch: Batch) -> list[Rejection]:
        return rejections_by_user_id(response, batch)

    def test_connection(self) -> str:
        # The contract has no read call; an empty add to a list that does not exist proves the URL
        # and the credentials (401 vs anything else) without touching partner data.
        probe = OutboundRequest(
            "POST",
            self.config["base_url"].rstrip("/")
            + self.config["add_path"].format(list_id="cohort-console-connection-test"),
            {"userIds": [], "context": amplitude_context()},
            self.auth_headers(),
        )
        response = self.http.send(probe, probe.encode(), "connection test")
        if response.status_code in (401, 403) or response.status_code >= 500:
            self.raise_for_response(response)
        return f"Reached the partner (HTTP {response.status_code}); credentials accepted."


def rejections_by_user_id(response: requests.Response, batch: Batch) -> list[Rejection]:
    """Amplitude-style receivers may answer 200 with {"rejected": [{"userId", "reason"}]}."""
    try:
        body = response.json()
    except ValueError:
        return []
    rejected = body.get("rejected") if isinstance(body, dict) else None
    if not rejected:
        return []
    by_id: dict[str, list[int]] = {}
    for row in batch.rows:
        by_id.setdefault(row.partner_id, []).append(row.seq)
    out = []
    for item in rejected:
        for seq in by_id.get(str(item.get("userId")), []):
            out.append(Rejection(seq, str(item.get("reason") or "rejected by partner"), str(item.get("code") or "")))
    return out
