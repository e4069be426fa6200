"""Campaign fixtures: a sandbox CleverTap over HTTP, a CleverTap destination, a segment synced to it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from campaigns import service
from campaigns.models import Campaign
from integrations.redis_client import redis_client
from tests.connectors.conftest import fast_delivery, partners  # noqa: F401
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync


@pytest.fixture(autouse=True)
def campaign_settings(settings):
    settings.CAMPAIGN_SENDS_PER_SECOND = 0  # unpaced unless a test measures pacing
    settings.CAMPAIGN_SEND_BATCH_SIZE = 1000
    settings.CAMPAIGN_LOOKUP_DELAY_SECONDS = 60
    for key in redis_client().scan_iter("campaigns:pace:*"):
        redis_client().delete(key)


@dataclass
class World:
    workspace: object
    partner: object  # the running sandbox server: .fake, .base_url
    destination: object
    segment: object
    job: object
    profiles: list[int]

    @property
    def fake(self):
        return self.partner.fake

    def add(self, indexes) -> None:
        add_members(self.segment, [self.profiles[i] for i in indexes])

    def sync(self):
        return sync(self.job)

    def campaign(self, **fields) -> Campaign:
        defaults = {
            "name": f"Campaign {Campaign.objects.count() + 1}",
            "kind": "live",
            "segment": self.segment,
            "destination": self.destination,
            "channel": "push",
            "content": {"title": "Your cart misses you", "body": "Come back for 10% off"},
        }
        return service.create_campaign(self.workspace, **{**defaults, **fields})

    def sends(self, person: str) -> int:
        """How many targeted sends CleverTap counted for `person` (any campaign)."""
        return sum(n for (_, who), n in self.fake.sends_per_person.items() if who == person)


@pytest.fixture
def world(acme, partners):  # noqa: F811
    partner = partners("clevertap", account_id="ACC-1", passcode="pass-1", campaign_rates={"send": 0, "create": 0})
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url},
        secrets={"passcode": "pass-1"},
        fields={"account_id": "ACC-1"},
    )
    segment = make_segment(acme)
    job = job_for(segment, dest)
    profiles = make_profiles(acme, range(20))
    return World(acme, partner, dest, segment, job, profiles)
