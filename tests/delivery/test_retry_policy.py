"""The retry policy, read in one place (integrations.delivery.calls.call_with_retries), against sandbox
partners answering as scripted: what it does with 429s, 5xx, refusals, long waits and a stop."""

import threading

import pytest
from django.utils import timezone

from integrations.connectors.base import Policy, RetryRule
from integrations.connectors.kahuna.actions import request_export
from integrations.connectors.kahuna.connector import KahunaConnector
from integrations.connectors.kahuna.export import run_export
from integrations.connectors.kahuna.models import ExportStatus, KahunaCampaign
from integrations.delivery.calls import Verdict, call_with_retries
from integrations.delivery.models import RunStatus
from integrations.delivery.planning import destination_connector
from integrations.delivery.semaphore import connector_slots
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync

PARKS = RetryRule()


@pytest.fixture
def list_partner(acme, partners):
    """(partner, call, slots): `call` is one setup call to the sandbox list partner (a list creation)."""
    partner = partners("list_api")
    dest = destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"})
    connector = destination_connector(dest)
    # A fresh connector each time: one that created its list would not ask again.
    return partner, lambda: destination_connector(dest).prepare(), connector_slots(connector, dest.pk)


@pytest.fixture
def list_job(acme, partners):
    """(partner, job): a sync of three members to the sandbox list partner, whose list is not made yet."""
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(3)))
    dest = destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"})
    return partner, job_for(segment, dest)


@pytest.fixture
def kahuna_export(acme, partners):
    """(partner, segment, campaign): three members to export to an enabled Adaptive campaign."""
    partner = partners("kahuna", secret_key="ks", api_key="ka")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(3)))
    dest = destination(acme, "kahuna", {"base_url": partner.base_url}, secrets={"secret_key": "ks", "api_key": "ka"})
    campaign = KahunaCampaign.objects.create(workspace=acme, destination=dest, name="Win-back", campaign_id="camp-p-1")
    return partner, segment, campaign


def answers(partner) -> list[int]:
    return [request["status"] for request in partner.fake.requests]


def test_429s_use_up_no_attempt_and_too_many_of_them_park(list_partner, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 1  # a burnt attempt would fail the call at once
    settings.DELIVERY_MAX_RATE_LIMIT_WAITS = 2
    partner, call, slots = list_partner
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "0"}}] * 2)
    result = call_with_retries(call, slots, rule=PARKS)
    assert (result.verdict, result.retried) == (Verdict.SENT, 0) and result.value["list_id"]
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "0"}}] * 3)
    parked = call_with_retries(call, slots, rule=PARKS)
    assert parked.verdict == Verdict.PARK and parked.error.policy == Policy.RATE_LIMITED
    assert parked.wait_seconds > settings.DELIVERY_SHORT_WAIT_SECONDS
    assert answers(partner) == [429, 429, 200, 429, 429, 429]


def test_transient_errors_are_retried_up_to_the_attempt_cap(list_partner, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    partner, call, slots = list_partner
    partner.fake.set_faults(script=[{"status": 503}] * 2)
    assert call_with_retries(call, slots, rule=PARKS).verdict == Verdict.SENT
    partner.fake.set_faults(script=[{"status": 503}] * 3)
    failed = call_with_retries(call, slots, rule=PARKS)
    assert (failed.verdict, failed.retried, failed.error.status) == (Verdict.FAILED, 2, 503)
    assert answers(partner) == [503, 503, 200, 503, 503, 503]


def test_refusals_and_bad_credentials_end_the_call_at_once(list_partner):
    partner, call, slots = list_partner
    partner.fake.set_faults(script=[{"status": 400}])
    assert call_with_retries(call, slots, rule=PARKS).verdict == Verdict.REJECTED
    partner.fake.set_faults(script=[{"status": 401}])
    stopped = call_with_retries(call, slots, rule=PARKS)
    assert stopped.verdict == Verdict.STOP and stopped.error.policy == Policy.AUTH
    assert answers(partner) == [400, 401]


def test_a_long_wait_parks_unless_the_connector_says_it_has_nowhere_to_park(list_partner, settings):
    settings.DELIVERY_SHORT_WAIT_SECONDS = 0.1
    partner, call, slots = list_partner
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "600"}}])
    parked = call_with_retries(call, slots, rule=PARKS)
    assert (parked.verdict, parked.wait_seconds) == (Verdict.PARK, 600)
    partner.fake.set_faults(script=[{"status": 503, "headers": {"Retry-After": "600"}}])
    waited = call_with_retries(call, slots, rule=KahunaConnector.export_retry_rule)
    assert (waited.verdict, waited.retried) == (Verdict.SENT, 1)
    assert answers(partner) == [429, 503, 200]


def test_a_stop_asked_for_sends_nothing(list_partner):
    partner, call, slots = list_partner
    stop = threading.Event()
    stop.set()
    result = call_with_retries(call, slots, rule=PARKS, stop=stop)
    assert (result.verdict, result.error, result.message) == (Verdict.STOP, None, "stopping")
    assert answers(partner) == []


def test_a_list_creation_answered_with_a_long_retry_after_parks_the_run(list_job):
    partner, job = list_job
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "120"}}])
    run = sync(job)
    assert run.status == RunStatus.WAITING and "429" in run.error
    assert 100 < (run.next_attempt_at - timezone.now()).total_seconds() <= 120
    assert partner.fake.lists == {} and answers(partner) == [429]


def test_an_export_to_kahuna_has_nowhere_to_park_so_it_waits_and_retries(kahuna_export, settings):
    settings.DELIVERY_SHORT_WAIT_SECONDS = 0.1
    partner, segment, campaign = kahuna_export
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "600"}}])
    export = run_export(request_export(segment, campaign).pk)
    assert (export.status, export.users_sent, export.error) == (ExportStatus.SUCCEEDED, 3, "")
    assert answers(partner) == [429, 200]


def test_a_list_creation_answered_429_again_and_again_parks_the_run(list_job, settings):
    settings.DELIVERY_MAX_RATE_LIMIT_WAITS = 2  # list creation used to wait out 429s without end
    partner, job = list_job
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "0"}}] * 3)
    run = sync(job)
    assert run.status == RunStatus.WAITING and run.next_attempt_at > timezone.now()
    assert answers(partner) == [429, 429, 429]


def test_an_export_to_kahuna_answered_429_again_and_again_fails_instead_of_retrying_forever(kahuna_export, settings):
    settings.DELIVERY_MAX_RATE_LIMIT_WAITS = 2
    partner, segment, campaign = kahuna_export
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "0"}}] * 3)
    export = run_export(request_export(segment, campaign).pk)
    assert (export.status, export.users_sent) == (ExportStatus.FAILED, 0) and "429" in export.error
    assert answers(partner) == [429, 429, 429]
