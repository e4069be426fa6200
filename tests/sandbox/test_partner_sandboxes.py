"""Contract tests for the sandbox partner fakes (integrations/sandbox/partners).

Plain pytest, no Django:
    .venv/bin/python -m pytest -p no:django -p no:cacheprovider tests/sandbox/test_partner_sandboxes.py -q
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from integrations.sandbox.partners import KINDS, running_partner

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"integration": {"name": "Amplitude Cohort Sync", "version": "1.0.0"}}
AMP_AUTH = ("test-api-key", "")
CT_HEADERS = {"X-CleverTap-Account-Id": "ACC", "X-CleverTap-Passcode": "PASS"}
CT_OPTIONS = {"account_id": "ACC", "passcode": "PASS"}
KAHUNA_AUTH = ("test-secret", "test-api-key")
TIMEOUT = 5


@pytest.fixture
def partner():
    """Factory: partner(kind, **options) -> running server; all stopped at teardown."""
    stack = []

    def start(kind: str, **options):
        ctx = running_partner(kind, **options)
        stack.append(ctx)
        return ctx.__enter__()

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def post(url: str, **kwargs) -> requests.Response:
    return requests.post(url, timeout=kwargs.pop("timeout", TIMEOUT), **kwargs)


def install(device: str = "kdev-1") -> dict:
    return {
        "action": "install",
        "kochava_app_id": "koapp",
        "kochava_device_id": device,
        "data": {
            "origination_ip": "104.219.46.66",
            "device_ua": "Mozilla%2F5.0",
            "device_ver": "",
            "device_ids": {"idfa": f"idfa-{device}"},
        },
    }


def kochava_event(device: str = "kdev-1", **data) -> dict:
    record = install(device)
    record["action"] = "event"
    record["data"].update({"event_name": "Purchase", "usertime": 1521574016, **data})
    return record


# One representative successful call per kind (options, path, request kwargs), for the fault tests.
HAPPY = {
    "list_api": ({}, "/lists", {"json": {"name": "c", "context": CONTEXT}, "auth": AMP_AUTH}),
    "traits_api": (
        {},
        "/identify",
        {"json": {"type": "identify", "userId": "u1", "traits": {"c": True}}, "auth": AMP_AUTH},
    ),
    "cohort_webhook": (
        {},
        "/hook",
        {"json": {"cohort_id": "c1", "message_id": "m::enter::0", "in_cohort": True, "users": [{"user_id": "u1"}]}},
    ),
    "clevertap": (
        CT_OPTIONS,
        "/1/upload",
        {"headers": CT_HEADERS, "json": {"d": [{"type": "profile", "identity": "u1", "profileData": {"Name": "A"}}]}},
    ),
    "kochava": ({}, "/track/json", {"json": install()}),
    "kahuna": ({}, "/api/push?env=p", {"auth": KAHUNA_AUTH, "json": {"push_array": [{"target": {"email": "a@b"}}]}}),
}


def happy(kind: str, base_url: str, timeout: float = TIMEOUT) -> requests.Response:
    _, path, kwargs = HAPPY[kind]
    return post(f"{base_url}{path}", timeout=timeout, **kwargs)


def test_every_kind_has_a_happy_call():
    assert set(HAPPY) == set(KINDS)


# ---- shared fault injection (every kind) ------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HAPPY))
def test_scripted_429_then_503_then_ok(partner, kind):
    srv = partner(kind, **HAPPY[kind][0])
    srv.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 503}])
    first, second, third = (happy(kind, srv.base_url) for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"]) == (429, "1")
    assert second.status_code == 503
    assert third.status_code == 200
    assert [r["status"] for r in srv.fake.requests] == [429, 503, 200]
    assert srv.fake.stats()["faults_injected"] == 2


@pytest.mark.parametrize("kind", sorted(HAPPY))
def test_delay_makes_client_time_out_then_recovers(partner, kind):
    srv = partner(kind, **HAPPY[kind][0])
    srv.fake.set_faults(script=[{"delay": 3.0}])
    with pytest.raises(requests.exceptions.ReadTimeout):
        happy(kind, srv.base_url, timeout=0.3)
    assert happy(kind, srv.base_url).status_code == 200


@pytest.mark.parametrize("kind", sorted(HAPPY))
def test_oversized_body_gets_413(partner, kind):
    srv = partner(kind, **HAPPY[kind][0], max_body_bytes=1000)
    response = post(f"{srv.base_url}/anything", data=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert srv.fake.requests[-1]["status"] == 413


def test_default_2mb_limit_for_clevertap_and_kochava(partner):
    big = {"d": [{"type": "profile", "identity": "u", "profileData": {"Bio": "x" * (2 * 1024 * 1024)}}]}
    ct = partner("clevertap", **CT_OPTIONS)
    response = post(f"{ct.base_url}/1/upload", headers=CT_HEADERS, json=big)
    assert response.status_code == 413
    assert response.json()["status"] == "fail"
    ko = partner("kochava")
    response = post(f"{ko.base_url}/track/json", json=kochava_event(blob="x" * (2 * 1024 * 1024)))
    assert (response.status_code, response.json()["success"]) == (413, "0")


def test_probability_mode_is_seeded_and_reproducible(partner):
    srv = partner("list_api", seed=7)

    def run() -> list[int]:
        srv.fake.set_faults(rate=0.3, rate_status=429, rate_headers={"Retry-After": "2"})
        return [happy("list_api", srv.base_url).status_code for _ in range(30)]

    first = run()
    srv.fake.reset()  # reseeds the RNG
    assert run() == first
    assert 0 < first.count(429) < 30 and set(first) == {200, 429}
    throttled = next(r for r in srv.fake.requests if r["status"] == 429)
    assert throttled["path"] == "/lists"


def test_drop_closes_the_connection(partner):
    srv = partner("kochava")
    srv.fake.set_faults(script=[{"drop": True}])
    with pytest.raises(requests.exceptions.ConnectionError):
        post(f"{srv.base_url}/track/json", json=install())
    assert post(f"{srv.base_url}/track/json", json=install()).json() == {"success": "1"}


def test_generic_concurrency_cap(partner):
    srv = partner("list_api", concurrency_cap=2, latency=0.4)
    statuses = _parallel(lambda: happy("list_api", srv.base_url).status_code, 4)
    assert Counter(statuses) == {200: 2, 429: 2}
    assert srv.fake.stats()["concurrency_rejections"] == 2


def _parallel(fn, n: int) -> list:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


# ---- control endpoints ------------------------------------------------------------------------


def test_control_endpoints(partner):
    srv = partner("list_api")
    url = srv.base_url
    list_id = post(f"{url}/lists", json={"name": "c"}, auth=AMP_AUTH).json()["listId"]
    post(f"{url}/lists/{list_id}/add", json={"userIds": ["a"]}, auth=AMP_AUTH)
    post(f"{url}/lists/{list_id}/add", json={"userIds": ["b"]}, auth=("nope", ""))

    recorded = requests.get(f"{url}/_sandbox/requests", params={"path": f"/lists/{list_id}"}, timeout=TIMEOUT).json()
    assert recorded["count"] == 2
    assert [r["status"] for r in recorded["requests"]] == [200, 401]
    assert recorded["requests"][0]["body"] == {"userIds": ["a"]}
    assert recorded["requests"][0]["headers"]["authorization"].startswith("Basic ")
    limited = requests.get(f"{url}/_sandbox/requests?limit=1", timeout=TIMEOUT).json()
    assert limited["count"] == 3 and len(limited["requests"]) == 1

    stats = requests.get(f"{url}/_sandbox/stats", timeout=TIMEOUT).json()
    assert stats["kind"] == "list_api" and stats["total"] == 3
    assert stats["by_status"] == {"200": 2, "401": 1}
    assert stats["lists"] == {str(list_id): 1}

    faults = post(f"{url}/_sandbox/faults", json={"script": [{"status": 500}], "latency": 0}).json()
    assert faults["script"] == [{"status": 500}]
    assert post(f"{url}/lists", json={"name": "c"}, auth=AMP_AUTH).status_code == 500
    assert post(f"{url}/_sandbox/faults", json={"bogus": 1}).status_code == 400

    assert post(f"{url}/_sandbox/reset").json() == {"reset": True}
    assert srv.fake.requests == [] and srv.fake.lists == {}
    assert requests.get(f"{url}/_sandbox/stats", timeout=TIMEOUT).json()["total"] == 0


def test_cli_serves_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "integrations.sandbox.partners", "kochava", "--port", "0", "-o", 'app_ids=["koapp"]'],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        base_url = line.split(" on ")[1].split()[0]
        assert post(f"{base_url}/track/json", json=install()).json() == {"success": "1"}
        assert requests.get(f"{base_url}/_sandbox/stats", timeout=TIMEOUT).json()["installs"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


# ---- list_api ---------------------------------------------------------------------------------


def test_list_api_happy_path_keeps_membership(partner):
    srv = partner("list_api")
    url = srv.base_url
    created = post(f"{url}/lists", json={"name": "[Amplitude] Buyers: 26umsb5", "context": CONTEXT}, auth=AMP_AUTH)
    assert created.status_code == 200 and created.json() == {"listId": 1}
    add = post(f"{url}/lists/1/add", json={"userIds": ["u1", "u2", "u3"], "context": CONTEXT}, auth=AMP_AUTH)
    assert add.json() == {"success": True}
    assert post(f"{url}/lists/1/remove", json={"userIds": ["u2", "ghost"]}, auth=AMP_AUTH).json() == {"success": True}
    assert srv.fake.members(1) == {"u1", "u3"}
    assert srv.fake.lists["1"].name == "[Amplitude] Buyers: 26umsb5"


def test_list_api_auth_variants_and_errors(partner):
    basic = partner("list_api")
    bad = post(f"{basic.base_url}/lists", json={"name": "c"}, auth=("wrong", ""))
    assert (bad.status_code, bad.json()) == (401, {"error": "invalid api_key"})
    missing = post(f"{basic.base_url}/lists/99/add", json={"userIds": ["u"]}, auth=AMP_AUTH)
    assert missing.status_code == 404
    assert post(f"{basic.base_url}/lists", data="{nope", auth=AMP_AUTH).status_code == 400

    header = partner("list_api", auth="header", list_id_path="data.id")
    ok = post(f"{header.base_url}/lists", json={"name": "c"}, headers={"api_key": "test-api-key"})
    assert ok.json() == {"data": {"id": 1}}
    assert post(f"{header.base_url}/lists", json={"name": "c"}, auth=AMP_AUTH).status_code == 401

    bearer = partner("list_api", auth="bearer", api_key="tok")
    ok = post(f"{bearer.base_url}/lists", json={"name": "c"}, headers={"Authorization": "Bearer tok"})
    assert ok.status_code == 200


def test_list_api_rejects_whole_request_with_bad_ids(partner):
    srv = partner("list_api", reject_prefix="bad-", reject_ids={"evil"})
    post(f"{srv.base_url}/lists", json={"name": "c"}, auth=AMP_AUTH)
    response = post(f"{srv.base_url}/lists/1/add", json={"userIds": ["u1", "bad-1", "evil"]}, auth=AMP_AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid user id", "invalid": ["bad-1", "evil"]}
    assert srv.fake.members(1) == set()  # nothing applied: the client has to bisect and resend


def test_list_api_per_row_rejection(partner):
    srv = partner("list_api", reject_prefix="bad-", reject_mode="row")
    post(f"{srv.base_url}/lists", json={"name": "c"}, auth=AMP_AUTH)
    response = post(f"{srv.base_url}/lists/1/add", json={"userIds": ["u1", "bad-1"]}, auth=AMP_AUTH)
    assert response.status_code == 200
    assert response.json() == {"success": True, "rejected": [{"userId": "bad-1", "reason": "invalid user id"}]}
    assert srv.fake.members(1) == {"u1"}


# ---- traits_api -------------------------------------------------------------------------------


def test_traits_api_single_and_batch(partner):
    srv = partner("traits_api", auth="header")
    headers = {"api_key": "test-api-key"}
    trait = "[Amplitude] Buyers: 26umsb5"
    single = {"type": "identify", "userId": "u1", "traits": {trait: True}, "context": CONTEXT}
    assert post(f"{srv.base_url}/cohorts", json=single, headers=headers).json() == {"success": True}
    batch = {
        "batch": [
            {"type": "identify", "userId": "u2", "traits": {trait: True}},
            {"type": "identify", "userId": "u1", "traits": {trait: False}},
        ]
    }
    assert post(f"{srv.base_url}/cohorts", json=batch, headers=headers).status_code == 200
    assert srv.fake.members(trait) == {"u2"}
    assert srv.fake.traits["u1"] == {trait: False}

    bad = post(f"{srv.base_url}/cohorts", json={"batch": [single, {"type": "track"}]}, headers=headers)
    assert bad.status_code == 400 and bad.json()["index"] == 1
    unauthorized = post(f"{srv.base_url}/cohorts", json=single, headers={"api_key": "x"})
    assert (unauthorized.status_code, unauthorized.json()) == (401, {"error": "invalid api_key"})


# ---- cohort_webhook ---------------------------------------------------------------------------


def test_cohort_webhook_dedupes_and_checks_header(partner):
    srv = partner("cohort_webhook", required_headers={"X-Token": "s3cret"})
    payload = {
        "cohort_name": "My Test Cohort",
        "cohort_id": "7khm89cz",
        "in_cohort": True,
        "computed_time": "1692206763",
        "message_id": "9baa::enter::0",
        "users": [{"user_id": "u1", "user_properties": {}}, {"user_id": "u2"}],
    }
    headers = {"X-Token": "s3cret", "User-Agent": "Amplitude/Webhook/1.0"}
    assert post(f"{srv.base_url}/amp", json=payload, headers=headers).json() == {"ok": True, "duplicate": False}
    assert post(f"{srv.base_url}/amp", json=payload, headers=headers).json()["duplicate"] is True
    leave = {**payload, "in_cohort": False, "message_id": "9baa::exit::0", "users": [{"user_id": "u2"}]}
    post(f"{srv.base_url}/amp", json=leave, headers=headers)
    assert srv.fake.duplicates == 1 and len(srv.fake.payloads) == 2
    assert srv.fake.members("7khm89cz") == {"u1"}
    assert post(f"{srv.base_url}/amp", json=payload).status_code == 401
    assert post(f"{srv.base_url}/amp", json={"x": 1}, headers=headers).status_code == 400


# ---- clevertap --------------------------------------------------------------------------------


def test_clevertap_happy_path_stores_profiles_and_events(partner):
    srv = partner("clevertap", **CT_OPTIONS)
    body = {
        "d": [
            {
                "type": "profile",
                "identity": "u1",
                "ts": 1692206763,
                "profileData": {"Name": "Ann", "Email": "ann@example.com", "Phone": "+14155552671"},
            },
            {"type": "profile", "objectId": "543C-3455-4555-3SRD", "profileData": {"Amplitude Cohort": True}},
            {"type": "event", "identity": "u1", "evtName": "Partner Sync", "evtData": {"Action": "Added"}},
        ]
    }
    response = post(f"{srv.base_url}/1/upload", headers=CT_HEADERS, json=body)
    assert response.json() == {"status": "success", "processed": 3, "unprocessed": []}
    assert srv.fake.profiles["u1"]["Email"] == "ann@example.com"
    assert "543C-3455-4555-3SRD" in srv.fake.profiles
    assert srv.fake.events[0]["evtName"] == "Partner Sync"


def test_clevertap_bad_credentials(partner):
    srv = partner("clevertap", **CT_OPTIONS)
    response = post(f"{srv.base_url}/1/upload", headers={**CT_HEADERS, "X-CleverTap-Passcode": "x"}, json={"d": []})
    assert response.status_code == 401
    assert response.json() == {"status": "fail", "error": "Account ID is not valid", "code": 401}


def test_clevertap_per_record_failures(partner):
    srv = partner("clevertap", **CT_OPTIONS)
    records = [
        {"type": "profile", "identity": "ok", "profileData": {"Name": "fine"}},
        {"type": "profile", "identity": "", "profileData": {"Name": "no id"}},
        {"type": "event", "identity": "u", "evtData": {}},
        {"type": "event", "identity": "u", "evtName": "E", "ts": 1692206763000},
        {"type": "profile", "objectId": "has space", "profileData": {}},
        {"type": "profile", "identity": "u", "profileData": {"Email": "nope"}},
        {"type": "profile", "identity": "u", "profileData": {"Phone": "4155552671"}},
    ]
    body = post(f"{srv.base_url}/1/upload", headers=CT_HEADERS, json={"d": records}).json()
    assert body["status"] == "success" and body["processed"] == 1
    assert [u["code"] for u in body["unprocessed"]] == [523, 509, 525, 526, 515, 516]
    first = body["unprocessed"][0]
    assert first["status"] == "fail" and first["error"].endswith("Skipped record number : 2")
    assert isinstance(first["record"], str) and json.loads(first["record"]) == records[1]
    assert list(srv.fake.profiles) == ["ok"]


def test_clevertap_strict_status_and_record_cap(partner):
    srv = partner("clevertap", **CT_OPTIONS, status_style="strict")
    url = f"{srv.base_url}/1/upload"
    bad = {"type": "event", "identity": "u"}
    good = {"type": "event", "identity": "u", "evtName": "E"}
    assert post(url, headers=CT_HEADERS, json={"d": [good, bad]}).json()["status"] == "partial"
    assert post(url, headers=CT_HEADERS, json={"d": [bad]}).json()["status"] == "fail"
    too_many = post(url, headers=CT_HEADERS, json={"d": [good] * 1001})
    assert too_many.status_code == 400 and too_many.json()["status"] == "fail"


def test_clevertap_15_concurrent_requests_per_account(partner):
    srv = partner("clevertap", **CT_OPTIONS, latency=0.5)
    responses = _parallel(lambda: happy("clevertap", srv.base_url), 20)
    assert Counter(r.status_code for r in responses) == {200: 15, 429: 5}
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json()["error"] == "Too many concurrent requests"
    assert "Retry-After" not in throttled.headers  # CleverTap sends none


# ---- kochava ----------------------------------------------------------------------------------


def test_kochava_install_event_and_identity_link(partner):
    srv = partner("kochava")
    url = f"{srv.base_url}/track/json"
    assert post(url, json=install("kdev-1")).json() == {"success": "1"}
    assert post(url, json=kochava_event("kdev-1")).json() == {"success": "1"}
    link = {
        "action": "identityLink",
        "kochava_app_id": "koapp",
        "kochava_device_id": "kdev-1",
        "data": {"identity_link": {"User ID": "u1"}},
    }
    assert post(url, json=link).json() == {"success": "1"}
    assert srv.fake.identities["kdev-1"] == {"User ID": "u1"}
    assert len(srv.fake.events) == 1 and "kdev-1" in srv.fake.installs


def test_kochava_rejects_batches_and_missing_fields(partner):
    srv = partner("kochava")
    url = f"{srv.base_url}/track/json"
    batch = post(url, json=[install("a"), install("b")])
    assert batch.status_code == 400 and batch.json()["success"] == "0"
    no_ids = kochava_event()
    no_ids["data"]["device_ids"] = {}
    missing = post(url, json=no_ids)
    assert (missing.status_code, missing.json()) == (
        400,
        {"success": "0", "error": "data.device_ids needs at least one id"},
    )
    no_ip = install()
    del no_ip["data"]["origination_ip"]
    assert post(url, json=no_ip).status_code == 400


def test_kochava_legacy_identity_link_needs_install(partner):
    srv = partner("kochava")
    url = f"{srv.base_url}/v1/cpi/identityLink.php"
    body = {"kochava_app_id": "koapp", "device_id": {"idfa": "IDFA-1"}, "data": {"email": "a@b.co"}}
    # Assumption documented in the fake: unknown device -> 200 with success "0".
    assert post(url, json=body).json() == {"success": "0", "error": "device not found"}
    srv.fake.register_install("kdev-9", device_ids={"idfa": "IDFA-1"})
    assert post(url, json=body).json() == {"success": "1"}
    assert srv.fake.identities["kdev-9"] == {"email": "a@b.co"}


# ---- kahuna -----------------------------------------------------------------------------------


def test_kahuna_log_form_auth(partner):
    srv = partner("kahuna")
    form = {"key": "test-secret", "env": "p", "dev_id": "dev-1", "event": "start", "user_email": "a@b.co"}
    assert post(f"{srv.base_url}/log", data=form).json() == {"success": True}
    assert srv.fake.events["p"][0]["dev_id"] == "dev-1"
    bad = post(f"{srv.base_url}/log", data={**form, "key": "wrong"})
    assert bad.status_code == 401
    assert bad.json() == {"error_code": 401, "success": False, "error": "Authentication failed"}


def test_kahuna_json_apis(partner):
    srv = partner("kahuna")
    url = srv.base_url
    item = {"target": {"email": "a@b.co"}, "attributes": {"first_name": "Ann"}}
    assert post(f"{url}/api/userattributes?env=p", auth=KAHUNA_AUTH, json={"user_attributes_array": [item]}).json() == {
        "success": True
    }
    assert srv.fake.user_attributes["p"]["email:a@b.co"] == {"first_name": "Ann"}
    too_many = post(f"{url}/api/userattributes?env=p", auth=KAHUNA_AUTH, json={"user_attributes_array": [item] * 101})
    assert too_many.status_code == 400 and too_many.json()["success"] is False

    populate = post(
        f"{url}/api/campaign/populate?env=p",
        auth=KAHUNA_AUTH,
        json={"campaign_config": {"campaign_id": "camp-p-1"}, "users": [{"email": "a@b.co"}]},
    )
    assert populate.json() == {"success": True, "job_id": "job-1"}
    unknown = post(
        f"{url}/api/campaign/populate?env=s", auth=KAHUNA_AUTH, json={"campaign_config": {"campaign_id": "camp-p-1"}}
    )
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error_code": 404, "success": False, "error": "Campaign not found"},
    )

    campaigns = requests.get(f"{url}/api/campaigns", params={"env": "p"}, auth=KAHUNA_AUTH, timeout=TIMEOUT).json()
    assert {c["id"]: c["enabled"] for c in campaigns["campaigns"]} == {"camp-p-1": True, "camp-p-2": False}
    assert all(c["type"] == "adaptive" for c in campaigns["campaigns"])

    assert happy("kahuna", url).json() == [{"success": True}]
    denied = post(f"{url}/api/push?env=p", auth=("test-secret", "wrong"), json={"push_array": [{}]})
    assert denied.status_code == 401 and denied.json()["error"] == "Authentication failed"
    assert post(f"{url}/api/push", auth=KAHUNA_AUTH, json={"push_array": [{}]}).status_code == 400  # no env


def test_kahuna_populate_allows_10_simultaneous(partner):
    srv = partner("kahuna", latency=0.5)
    body = {"campaign_config": {"campaign_id": "camp-p-1"}}
    statuses = _parallel(
        lambda: post(f"{srv.base_url}/api/campaign/populate?env=p", auth=KAHUNA_AUTH, json=body).status_code, 12
    )
    assert Counter(statuses) == {200: 10, 429: 2}
