"""Amplitude's property-based cohort sync (Segment-style identify), outbound.

{"batch": [{"type": "identify", "userId": .., "traits": {"[<prefix>] <segment>: <id>": true|false}, "context": ..}]}
"""

from __future__ import annotations

import requests
from rest_framework import serializers

from integrations.connectors.base import (
    AmplitudeAuthConfig,
    AmplitudeContractConnector,
    Arrival,
    Batch,
    Limits,
    OutboundRequest,
    Rejection,
    SegmentInfo,
    amplitude_context,
)
from integrations.connectors.list_api import rejections_by_user_id


class TraitsApiConfig(AmplitudeAuthConfig):
    url = serializers.URLField(help_text="The partner's identify (update) endpoint.")
    trait_prefix = serializers.CharField(default="Amplitude", max_length=64)
    batch_size = serializers.IntegerField(default=1_000, min_value=1, max_value=10_000)


def trait_name(config: dict, segment: SegmentInfo) -> str:
    return f"[{config.get('trait_prefix') or 'Amplitude'}] {segment.name}: {segment.external_id}"


class TraitsApiConnector(AmplitudeContractConnector):
    kind = "traits_api"
    Config = TraitsApiConfig
    limits = Limits(records_per_request=10_000, bytes_per_request=2 * 1024 * 1024, concurrent_requests=4)
    host_fields = ("url",)

    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        return (
            f"Identify calls setting the trait “[{config.get('trait_prefix', 'Amplitude')}] {segment.name}” "
            "to true when a person enters and false when they leave."
        )

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        trait = trait_name(config, segment)
        return Arrival(
            where=f"Each member has the trait “{trait}” at the partner: true while they are in “{segment.name}”, "
            "false once they leave.",
            names=(("Trait", trait),),
            how=(f"At the partner, build the audience on the trait “{trait}” being true.",),
        )

    @property
    def trait(self) -> str:
        return trait_name(self.config, self.segment)

    def build_request(self, batch: Batch) -> OutboundRequest:
        value = batch.action == "add"
        context = amplitude_context()
        items = []
        for row in batch.rows:
            item = {"type": "identify", "userId": row.partner_id, "traits": {self.trait: value}, "context": context}
            if row.device_id:
                item["anonymousId"] = row.device_id
            items.append(item)
        return OutboundRequest("POST", self.config["url"], {"batch": items}, self.auth_headers())

    def parse_response(self, response: requests.Response, batch: Batch) -> list[Rejection]:
        return rejections_by_user_id(response, batch)

    def test_connection(self) -> str:
        # An empty batch is refused by well-behaved partners with 400 but only after auth: 401 tells us.
        probe = OutboundRequest("POST", self.config["url"], {"batch": []}, self.auth_headers())
        response = self.http.send(probe, probe.encode(), "connection test")
        if response.status_code in (401, 403) or response.status_code >= 500:
            self.raise_for_response(response)
        return f"Reached the partner (HTTP {response.status_code}); credentials accepted."
