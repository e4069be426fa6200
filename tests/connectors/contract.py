"""The shared connector contract, in the style of django-allauth's provider test mixin.

Every connector gets the same seven tests for free by subclassing `ConnectorContract` and saying
how to reach its sandbox partner. Each test runs a real sync (planning, batching, retries,
recording) against the sandbox over real HTTP:

    class TestCleverTap(ConnectorContract):
        kind = "clevertap"; partner_kind = "clevertap"
        secrets = {...}; wrong_secrets = {...}
        def destination_config(self, base_url): ...
        def delivered_ids(self, fake, job): ...
        def reject_options(self, user_id): ...
"""

from __future__ import annotations

import pytest

from integrations.connectors.base import Batch, OutRow
from integrations.delivery.models import Health, PartnerCall, RowStatus
from integrations.delivery.planning import build_connector
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync

MEMBERS = 6


class ConnectorContract:
    kind: str
    partner_kind: str
    secrets: dict = {}
    wrong_secrets: dict = {}
    auth_fields: dict = {}
    partner_options: dict = {}

    # ---- what each connector says about itself -----------------------------------------------
    def destination_config(self, base_url: str) -> dict:
        raise NotImplementedError

    def delivered_ids(self, fake, job) -> set[str]:
        """The partner ids the partner now holds as members of the segment."""
        raise NotImplementedError

    def reject_options(self, user_id: str) -> dict:
        """Partner options that make it refuse this one id (per row or for the whole call)."""
        raise NotImplementedError

    def expected_ids(self) -> set[str]:
        return {f"u{i}" for i in range(MEMBERS)}

    # ---- plumbing -------------------------------------------------------------------------------
    @pytest.fixture
    def world(self, acme, partners):
        def build(secrets=None, **partner_overrides):
            partner = partners(self.partner_kind, **{**self.partner_options, **partner_overrides})
            segment = make_segment(acme)
            add_members(segment, make_profiles(acme, range(MEMBERS)))
            dest = destination(
                acme,
                self.kind,
                self.destination_config(partner.base_url),
                secrets=self.secrets if secrets is None else secrets,
                fields=self.auth_fields,
            )
            return partner, job_for(segment, dest)

        return build

    # ---- the contract -------------------------------------------------------------------------
    def test_ok_delivers_every_member_and_logs_masked_calls(self, world):
        partner, job = world()
        run = sync(job)
        assert run.status == "succeeded", run.error
        assert (run.delivered, run.rejected, run.failed) == (MEMBERS, 0, 0)
        job.refresh_from_db()
        assert self.delivered_ids(partner.fake, job) == self.expected_ids()
        calls = PartnerCall.objects.filter(destination=job.destination)
        assert calls.exists() and all(c.status_code and c.status_code < 300 for c in calls)
        logged = " ".join(
            f"{c.url} {c.request_summary} {c.response_summary} {c.response_excerpt} {c.error} {c.error_detail}"
            for c in calls
        )
        for secret in self.secrets.values():
            assert secret not in logged

    def test_401_disables_the_destination_with_the_partners_message(self, world):
        partner, job = world(secrets=self.wrong_secrets)
        run = sync(job)
        assert run.status == "failed"
        job.destination.refresh_from_db()
        assert job.destination.health == Health.DISABLED
        assert "401" in job.destination.last_error
        assert self.delivered_ids(partner.fake, job) == set()

    def test_429_with_retry_after_is_honoured_without_burning_attempts(self, world, settings):
        settings.DELIVERY_MAX_ATTEMPTS = 1  # a burnt attempt would fail the batch
        partner, job = world()
        partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "1"}}] * 2)
        run = sync(job)
        assert run.status == "succeeded", run.error
        assert run.retried == 0
        job.refresh_from_db()
        assert self.delivered_ids(partner.fake, job) == self.expected_ids()
        assert partner.fake.stats()["by_status"].get("429") == 2

    def test_5xx_then_ok_is_retried(self, world):
        partner, job = world()
        partner.fake.set_faults(script=[{"status": 503}])
        run = sync(job)
        assert run.status == "succeeded", run.error
        assert partner.fake.stats()["by_status"].get("503") == 1
        job.refresh_from_db()
        assert self.delivered_ids(partner.fake, job) == self.expected_ids()

    def test_timeout_is_retried(self, world, settings):
        settings.DELIVERY_READ_TIMEOUT = 0.3
        partner, job = world()
        partner.fake.set_faults(script=[{"delay": 1.0}])
        run = sync(job)
        assert run.status == "succeeded", run.error
        job.refresh_from_db()
        assert self.delivered_ids(partner.fake, job) == self.expected_ids()
        # Users read the one generic message (no port scanning); ops read what happened in the admin.
        timed_out = PartnerCall.objects.filter(destination=job.destination, error_detail__startswith="ReadTimeout")
        assert [c.error for c in timed_out] == ["Could not connect to the partner."]

    def test_oversize_batch_is_split(self, world):
        partner, job = world()
        # Targets (lists) are created first: their setup call is not a batch and is not split.
        job.partner_state = build_connector(job).prepare()
        job.save(update_fields=["partner_state"])
        partner.fake.set_faults(max_body_bytes=self.body_cap_between_one_row_and_all(job))
        run = sync(job)
        assert run.status == "succeeded", run.error
        job.refresh_from_db()
        assert self.delivered_ids(partner.fake, job) == self.expected_ids()
        assert partner.fake.stats()["by_status"].get("413", 0) >= 1

    def body_cap_between_one_row_and_all(self, job) -> int:
        """A partner body cap that one row fits under but the whole segment does not."""
        connector = build_connector(job)
        rows = [OutRow(i, i, "add", f"u{i}", f"d{i}") for i in range(MEMBERS)]
        one, everyone = (len(connector.build_request(Batch("add", part)).encode()) for part in (rows[:1], rows))
        return (one + everyone) // 2

    def test_per_row_rejection_is_recorded_with_the_reason(self, world):
        partner, job = world(**self.reject_options("u3"))
        run = sync(job)
        assert run.status == "partially_failed", run.error
        assert (run.delivered, run.rejected) == (MEMBERS - 1, 1)
        row = run.rows.get(user_id="u3")
        assert row.status == RowStatus.REJECTED and row.reason
        job.refresh_from_db()
        assert self.delivered_ids(partner.fake, job) == self.expected_ids() - {"u3"}
