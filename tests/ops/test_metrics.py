"""GET /metrics: who may scrape, and every metric's value after real runs against the sandboxes."""

import datetime as dt
import re
import time
from pathlib import Path

import pytest
import yaml
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audiences.models import Event
from config import metrics
from config.celery import QUEUES, app
from config.scheduler import TICK_KEY, tick
from integrations.connectors.kahuna.actions import request_export
from integrations.connectors.kahuna.export import refresh_campaigns, run_export
from integrations.connectors.kahuna.models import KahunaCampaign
from integrations.connectors.kochava.stream import stream_events
from integrations.delivery.models import PartnerCall, RunStatus, SyncRun
from integrations.inbound.models import InboundBatch
from integrations.redis_client import redis_client
from integrations.sources.actions import create_run
from integrations.sources.execution import execute_run
from integrations.sources.models import CohortImportJob
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync
from tests.partners.test_end_to_end import kochava_destination, purchases
from tests.test_settings import PROD, run_manage

TOKEN = "metrics-token-0123456789abcdef"
ODD_NAME = 'Lists "EU" \\ all\nof them ☃'  # quotes, a backslash, a newline: escaped in the exposition


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value, from a scrape allowed by the token."""
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict, metric: str, **labels) -> float:
    return samples[f"cohort_console_{metric}", frozenset(labels.items())]


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []


# -- who may scrape -------------------------------------------------------------------------------


def test_production_refuses_every_scrape_when_neither_token_nor_networks_are_set(db, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    response = Client().get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "metrics_not_configured"
    assert b"cohort_console" not in response.content


def test_development_without_settings_answers_this_machine_only(db, settings):
    settings.DEBUG = True
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.10").get("/metrics").status_code == 403


def test_the_token_is_required_when_set(db, token):
    client = Client()
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "unauthorized"
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer ", "Bearer \x00"):
        assert client.get("/metrics", HTTP_AUTHORIZATION=wrong).status_code == 401, wrong
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_allowed_networks_match_the_peer_address_never_forwarded_headers(db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:10.1.2.3").get("/metrics").status_code == 200  # IPv4-mapped
    assert Client(REMOTE_ADDR="2001:db8::7").get("/metrics").status_code == 200
    outsider = Client(REMOTE_ADDR="192.0.2.10")
    refused = outsider.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3", HTTP_X_REAL_IP="10.1.2.3")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_network"
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403  # loopback is not special here
    assert Client(REMOTE_ADDR="not-an-address").get("/metrics").status_code == 403


def test_with_both_set_a_scrape_needs_both(db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = TOKEN, ["10.0.0.0/8"]
    inside, outside = Client(REMOTE_ADDR="10.9.9.9"), Client(REMOTE_ADDR="192.0.2.10")
    assert inside.get("/metrics").status_code == 401
    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 403
    assert inside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_are_not_redirected_to_https(db, token, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert Client().get("/login/").status_code == 301  # the rest of the site still is


def test_openmetrics_when_prometheus_asks_for_it(db, token):
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


# -- values -------------------------------------------------------------------------------------------


@pytest.fixture
def clean_queues():
    client = redis_client()
    keys = [queue + suffix for queue in QUEUES for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")]
    client.delete(*keys)
    yield
    client.delete(*keys)


def test_queue_depth_counts_the_messages_waiting_in_each_celery_queue(db, token, clean_queues):
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        app.conf.task_always_eager = False
        try:
            for _ in range(3):
                app.send_task("integrations.sources.tasks.nothing", queue="imports")
            app.send_task("integrations.delivery.tasks.nothing", queue="deliveries")
            app.send_task("integrations.delivery.tasks.nothing", queue="deliveries", priority=6)  # a list of its own
        finally:
            app.conf.task_always_eager = True
    samples = scrape()
    depths = {queue: value(samples, "celery_queue_length", queue=queue) for queue in QUEUES}
    assert depths == {"inbound": 0, "imports": 3, "deliveries": 2, "default": 0}
    assert value(samples, "metrics_source_up", source="redis") == 1
    assert value(samples, "celery_unacked_tasks") == redis_client().hlen("unacked")


def test_oldest_unapplied_inbound_batch_age_and_backlog(acme, token):
    now = timezone.now()
    assert value(scrape(), "inbound_oldest_pending_age_seconds") == 0
    for age, status in ((600, "applied"), (120, "accepted"), (30, "accepted"), (900, "failed")):
        InboundBatch.objects.create(
            workspace=acme, endpoint="list_add", body=b"{}", dedupe_key=f"k{age}", status=status,
            received_at=now - dt.timedelta(seconds=age),
        )  # fmt: skip
    samples = scrape()
    assert value(samples, "inbound_pending_batches") == 2
    assert 120 <= value(samples, "inbound_oldest_pending_age_seconds") < 130


def test_scheduler_tick_lag_after_a_real_tick_and_infinite_before_any(db, token):
    redis_client().delete(TICK_KEY)
    samples = scrape()
    assert value(samples, "scheduler_tick_lag_seconds") == float("inf")
    assert ("cohort_console_scheduler_last_tick_timestamp_seconds", frozenset()) not in samples
    before = time.time()
    tick()
    samples = scrape()
    assert before <= value(samples, "scheduler_last_tick_timestamp_seconds") <= time.time()
    assert 0 <= value(samples, "scheduler_tick_lag_seconds") < 5


def test_sync_runs_rows_and_partner_calls_per_destination(acme, partners, token):
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(12), nobody={11}))
    dest = destination(
        acme,
        "list_api",
        {"base_url": partner.base_url, "batch_size": 4},
        secrets={"api_key": "test-api-key"},
        name=ODD_NAME,
    )
    job = job_for(segment, dest)
    partner.fake.reject_ids = {"u6"}  # a 400 for every call containing it: bisected down to the row
    partner.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "0"}}, {"status": 503}])
    run = sync(job)
    assert (run.status, run.delivered, run.rejected, run.invalid) == (RunStatus.PARTIALLY_FAILED, 10, 1, 1), run.error
    # An older run, outside the window: counted nowhere.
    SyncRun.objects.create(
        workspace=acme, job=job, status=RunStatus.FAILED, delivered=1000,
        finished_at=timezone.now() - dt.timedelta(hours=2),
    )  # fmt: skip

    samples = scrape()
    d = str(dest.pk)
    assert value(samples, "destination_info", destination=d, workspace="acme", kind="list_api", name=ODD_NAME) == 1
    rows = {o: value(samples, "destination_rows", destination=d, outcome=o) for o in ("sent", "rejected", "invalid")}
    assert rows == {"sent": 10, "rejected": 1, "invalid": 1}
    assert value(samples, "runs_finished", kind="sync", outcome="partially_failed") == 1
    assert value(samples, "runs_finished", kind="sync", outcome="failed") == 0
    assert value(samples, "runs_active", kind="sync", status="running") == 0

    calls = list(PartnerCall.objects.filter(destination=dest))
    codes = {code: value(samples, "partner_calls", destination=d, code=code) for code in ("2xx", "4xx", "429", "5xx")}
    assert codes == {
        "2xx": sum(1 for c in calls if c.status_code == 200),
        "4xx": sum(1 for c in calls if c.status_code == 400),
        "429": 1,
        "5xx": 1,
    }
    assert codes["4xx"] >= 2 and sum(codes.values()) == len(calls)
    durations = sorted(c.duration_ms for c in calls)
    for quantile in (0.5, 0.95, 0.99):  # PostgreSQL's percentile_cont: linear between neighbours
        position = (len(durations) - 1) * quantile
        low, high = durations[int(position)], durations[min(int(position) + 1, len(durations) - 1)]
        expected = (low + (high - low) * (position - int(position))) / 1000
        measured = value(samples, "partner_call_duration_seconds", destination=d, quantile=str(quantile))
        assert measured == pytest.approx(expected)


def test_an_active_run_is_counted_by_status(acme, partners, token):
    dest = destination(acme, "list_api", {"base_url": "https://partner.example"}, secrets={"api_key": "k"})
    job = job_for(make_segment(acme), dest)
    SyncRun.objects.create(workspace=acme, job=job, status=RunStatus.WAITING)
    samples = scrape()
    assert value(samples, "runs_active", kind="sync", status="waiting") == 1
    assert value(samples, "runs_active", kind="sync", status="queued") == 0


def test_import_runs_by_outcome_and_the_download_quota_left(acme, amp, project, cohort_job, token, settings):
    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 40
    samples = scrape()
    assert value(samples, "amplitude_cohort_downloads_remaining", project=str(project.pk)) == 40  # nothing used
    amp.sandbox.add_cohort("c0ffee1", "Power users", size=50)
    amp.sandbox.add_cohort("c0ffee2", "Churn risk", size=20)
    good = create_run(cohort_job, enqueue=False)
    execute_run(good.pk)
    broken = CohortImportJob.objects.create(workspace=acme, project=project, label="gone", cohort_ids=["nope"])
    bad = create_run(broken, enqueue=False)
    execute_run(bad.pk)
    good.refresh_from_db(), bad.refresh_from_db()
    assert (good.status, bad.status) == ("succeeded", "failed"), (good.error, bad.error)

    samples = scrape()
    assert value(samples, "runs_finished", kind="cohort_import", outcome="succeeded") == 1
    assert value(samples, "runs_finished", kind="cohort_import", outcome="failed") == 1
    assert value(samples, "runs_finished", kind="event_import", outcome="succeeded") == 0
    p = str(project.pk)
    assert value(samples, "amplitude_project_info", project=p, workspace="acme", label="Music app") == 1
    assert value(samples, "amplitude_cohort_downloads_limit", project=p) == 40
    downloads = amp.sandbox.requests["cohort_request"]
    assert downloads >= 2
    assert value(samples, "amplitude_cohort_downloads_remaining", project=p) == 40 - downloads


def test_kahuna_exports_and_kochava_streams(acme, partners, token):
    kahuna = partners("kahuna", secret_key="ks", api_key="ka")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(5)))
    dest = destination(
        acme, "kahuna", {"base_url": kahuna.base_url, "environment": "p"}, secrets={"secret_key": "ks", "api_key": "ka"}
    )
    refresh_campaigns(dest)
    export = run_export(
        request_export(segment, KahunaCampaign.objects.get(destination=dest, campaign_id="camp-p-1")).pk
    )
    assert export.status == "succeeded" and export.users_sent == 5

    kochava = partners("kochava")
    stream_dest = kochava_destination(acme, kochava.base_url)
    purchases(acme, "p", 3)
    Event.objects.create(workspace=acme, uuid="n0", event_type="Purchase", ip_address="10.0.0.1")  # no device: skipped
    result = stream_events(stream_dest)
    assert (result.sent, result.skipped) == (3, 1)

    samples = scrape()
    assert value(samples, "runs_finished", kind="kahuna_export", outcome="succeeded") == 1
    assert value(samples, "destination_rows", destination=str(dest.pk), outcome="sent") == 5
    s = str(stream_dest.pk)
    assert value(samples, "kochava_stream_events_total", destination=s, outcome="sent") == 3
    assert value(samples, "kochava_stream_events_total", destination=s, outcome="skipped") == 1
    assert value(samples, "partner_calls", destination=s, code="2xx") == 3


def test_a_source_that_is_down_is_reported_and_the_others_still_answer(acme, token, settings, tmp_path):
    redis_client.cache_clear()
    try:
        settings.REDIS_URL = f"unix://{tmp_path}/no-such.sock"
        samples = scrape()
    finally:
        redis_client.cache_clear()
    assert value(samples, "metrics_source_up", source="redis") == 0
    assert value(samples, "metrics_source_up", source="database") == 1
    assert value(samples, "inbound_pending_batches") == 0
    assert not any(name == "cohort_console_celery_queue_length" for name, _ in samples)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("METRICS_TOKEN", "too-short", "at least 16 characters"),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, not-a-network", "'not-a-network' is not an IP network"),
        ("DB_TRANSACTION_POOLING", "sometimes", "is not a boolean"),
    ],
)
def test_malformed_metrics_settings_stop_start_up_naming_the_variable(name, value, says):
    result = run_manage("check", **{**PROD, name: value})
    assert result.returncode != 0
    assert name in result.stderr and says in result.stderr


def test_the_documented_alert_rules_use_metrics_the_endpoint_serves(acme, token):
    rules_file = Path(__file__).resolve().parents[2] / "docs" / "prometheus-alerts.yaml"
    (group,) = yaml.safe_load(rules_file.read_text())["groups"]
    rules = group["rules"]
    assert len(rules) == 4 and len({rule["alert"] for rule in rules}) == 4
    # Every series a rule reads exists in a real scrape, with the labels it groups or matches by.
    InboundBatch.objects.create(
        workspace=acme, endpoint="list_add", body=b"{}", dedupe_key="k", received_at=timezone.now()
    )
    labels_by_metric: dict[str, set[str]] = {}
    for name, labels in scrape():
        labels_by_metric.setdefault(name, set()).update(label for label, _ in labels)
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
        names = re.findall(r"cohort_console_[a-z_]+", rule["expr"])
        assert names, rule["alert"]
        for metric in names:
            assert metric in labels_by_metric, f"{rule['alert']}: {metric} is not served"
            used = set(re.findall(r"(\w+)\s*=~?", rule["expr"])) | set(
                re.findall(r"by \(([^)]*)\)", rule["expr"])[0].split(",") if "by (" in rule["expr"] else []
            )
            assert {label.strip() for label in used} <= labels_by_metric[metric], rule["alert"]


def test_a_query_slower_than_the_timeout_is_cut_off_and_reported(acme, token, monkeypatch):
    monkeypatch.setattr(metrics, "QUERY_TIMEOUT", "200ms")
    monkeypatch.setattr(metrics, "_CALLS_SQL", "SELECT pg_sleep(5)")  # as if the call log were huge
    started = time.monotonic()
    samples = scrape()
    assert time.monotonic() - started < 4
    assert value(samples, "metrics_source_up", source="database") == 0
    assert value(samples, "metrics_source_up", source="redis") == 1
    assert not any(name.startswith("cohort_console_runs_") for name, _ in samples)
    monkeypatch.undo()
    assert value(scrape(), "inbound_pending_batches") == 0  # the connection is usable again
