"""Tests for the fake Amplitude server (real HTTP via ``requests``; no Django).

Run: .venv/bin/python -m pytest -p no:django -p no:cacheprovider tests/sandbox/test_amplitude_sandbox.py -q
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import threading
import time
import tracemalloc
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from integrations.sandbox.amplitude import AmplitudeSandbox, build_demo_sandbox, running_amplitude_sandbox
from integrations.sandbox.datagen import CohortSpec, EventSource, Population, csv_columns, generated_csv

PROPS_HEADER = [
    "amplitude_id",
    "user_id",
    "amplitude_id",
    "city",
    "country",
    "region",
    "language",
    "platform",
    "os",
    "device",
    "device_type",
    "carrier",
    "library",
    "version",
    "start_version",
    "dma",
]
TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


@pytest.fixture
def amp():
    events = EventSource(datetime(2024, 1, 1), hours=48, events_per_hour=300, events_per_file=200, users=2000)
    sandbox = AmplitudeSandbox(seed=7, events=events)
    sandbox.add_cohort("26umsb5", "Power users", size=40)
    with running_amplitude_sandbox(sandbox) as running:
        running.session = requests.Session()
        running.session.auth = running.auth
        yield running


def api(amp, path, **kw):
    return amp.session.get(amp.base_url + path, **kw)


def export(amp, start, end, **kw):
    return api(amp, "/api/2/export", params={"start": start, "end": end}, **kw)


def request_file(amp, cohort_id, params=None, polls=1, **kw):
    """Run request -> poll -> file; returns the /file response (redirects not followed)."""
    r = api(amp, f"/api/5/cohorts/request/{cohort_id}", params=params)
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]
    for _ in range(polls):
        assert api(amp, f"/api/5/cohorts/request-status/{rid}").json()["async_status"] == "JOB INPROGRESS"
    r = api(amp, f"/api/5/cohorts/request-status/{rid}")
    assert (r.status_code, r.json()["async_status"]) == (200, "JOB COMPLETED")
    return api(amp, f"/api/5/cohorts/request/{rid}/file", allow_redirects=False, **kw)


def parse_csv(text):
    return list(csv.reader(io.StringIO(text)))


# --- Behavioral Cohorts API --------------------------------------------------------------
def test_list_cohorts(amp):
    r = api(amp, "/api/3/cohorts")
    assert r.status_code == 200
    (cohort,) = r.json()["cohorts"]
    assert cohort["id"] == "26umsb5" and cohort["name"] == "Power users" and cohort["size"] == 40
    assert cohort["appId"] == amp.sandbox.project.project_id and cohort["archived"] is False
    assert isinstance(cohort["lastComputed"], int) and cohort["lastComputed"] < 10**11  # epoch seconds
    assert cohort["popularity"] is None and cohort["owners"] and cohort["shortcut_ids"] == []


def test_request_poll_download_flow(amp):
    amp.sandbox.set_faults(poll_inprogress=2)
    r = api(amp, "/api/5/cohorts/request/26umsb5")
    assert r.status_code == 202 and r.json()["cohort_id"] == "26umsb5"
    rid = r.json()["request_id"]
    assert api(amp, f"/api/5/cohorts/request/{rid}/file").status_code == 400  # not ready yet
    statuses = [api(amp, f"/api/5/cohorts/request-status/{rid}") for _ in range(3)]
    assert [s.status_code for s in statuses] == [202, 202, 200]
    assert statuses[-1].json() == {"request_id": rid, "cohort_id": "26umsb5", "async_status": "JOB COMPLETED"}
    r = api(amp, f"/api/5/cohorts/request/{rid}/file")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = parse_csv(r.text)
    assert rows[0] == ["amplitude_id", "user_id"] and len(rows) == 41
    assert rows[1][0] == "10000000" and rows[1][1] in ("user-0", "")
    assert amp.sandbox.request_count("cohort_file") == 2


def test_unknown_ids_and_failed_job(amp):
    r = api(amp, "/api/5/cohorts/request/nope")
    assert r.status_code == 404 and r.json()["error"]["http_code"] == 404
    assert api(amp, "/api/5/cohorts/request-status/nope").status_code == 404
    amp.sandbox.set_faults(fail_jobs=1, poll_inprogress=0)
    rid = api(amp, "/api/5/cohorts/request/26umsb5").json()["request_id"]
    r = api(amp, f"/api/5/cohorts/request-status/{rid}")
    assert (r.status_code, r.json()["async_status"]) == (200, "JOB FAILED")
    assert api(amp, f"/api/5/cohorts/request/{rid}/file").status_code == 400


def test_csv_quoting_duplicated_column_and_prop_keys(amp):
    members = [
        {"amplitude_id": 1, "user_id": "a@example.com", "city": "Washington, D.C.", "nickname": 'The "Boss"'},
        {"amplitude_id": 2, "user_id": "", "country": "France"},
    ]
    amp.sandbox.add_cohort("explicit", "Explicit", members=members)
    text = request_file(amp, "explicit", {"props": 1}).text
    lines = text.split("\r\n")
    assert lines[0] == ",".join(f'"{c}"' for c in [*PROPS_HEADER, "nickname"])
    assert lines[1].startswith('"1","a@example.com","1","Washington, D.C.",""')
    assert lines[1].endswith('"The ""Boss"""')
    for line in filter(None, lines):  # every single value is quoted
        assert all(v.startswith('"') and v.endswith('"') for v in re.findall(r'"(?:[^"]|"")*"|[^,]+', line))
    rows = parse_csv(text)
    assert rows[2][:2] == ["2", ""] and rows[2][4] == "France"
    rows = parse_csv(request_file(amp, "26umsb5", [("props", 1), ("propKeys", "city"), ("propKeys", "plan")]).text)
    assert rows[0] == ["amplitude_id", "user_id", "amplitude_id", "city", "plan"]
    assert all(len(r) == 5 and r[0] == r[2] for r in rows[1:])


def test_generated_props_and_anonymous_rows(amp):
    amp.sandbox.set_faults(redirect="never")
    amp.sandbox.add_cohort("gen", "Generated", size=5000, start=100)
    rows = parse_csv(request_file(amp, "gen", {"props": 1}).text)
    assert rows[0] == [*PROPS_HEADER, "plan", "signup_source"] and len(rows) == 5001
    assert rows[1][0] == "10000100" and rows[1][0] == rows[1][2]
    anonymous = sum(1 for r in rows[1:] if r[1] == "")
    assert 30 < anonymous < 200  # ~2%
    assert {r[1] for r in rows[1:] if r[1]} <= {f"user-{n}" for n in range(100, 5100)}


def test_membership_drift_shows_entered_and_exited(amp):
    amp.sandbox.set_faults(redirect="never")
    amp.sandbox.add_cohort("drift", "Drifting", size=2000, churn=0.1)

    def ids():
        return {r[0] for r in parse_csv(request_file(amp, "drift").text)[1:]}

    before = ids()
    amp.sandbox.drift_cohort("drift")
    after = ids()
    exited, entered = before - after, after - before
    assert 100 < len(exited) < 300 and len(entered) == 200
    assert abs(len(after) - 2000) < 120
    assert api(amp, "/api/3/cohorts").json()["cohorts"][1]["size"] == len(after)


def test_redirect_to_s3_rejects_auth_and_expires(amp):
    fake_now = [1_700_000_000.0]
    amp.sandbox.clock = lambda: fake_now[0]
    amp.sandbox.set_faults(redirect="always", s3_ttl=60)
    r = request_file(amp, "26umsb5")
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(amp.base_url + "/s3/") and "X-Amz-Expires=60" in location
    r = amp.session.get(location)  # requests keeps Basic auth on a same-host redirect
    assert r.status_code == 400 and "<Code>InvalidArgument</Code>" in r.text
    r = requests.get(location)
    assert r.status_code == 200 and len(parse_csv(r.text)) == 41
    fake_now[0] += 61
    r = requests.get(location)
    assert r.status_code == 403
    assert "<Error><Code>AccessDenied</Code><Message>Request has expired</Message>" in r.text
    assert amp.sandbox.request_count("s3") == 3


def test_size_threshold_and_gzip(amp):
    amp.sandbox.add_cohort("big", "Big", size=1500)
    assert request_file(amp, "26umsb5").status_code == 200  # 40 <= 1000: direct
    amp.sandbox.set_faults(gzip=True)
    r = request_file(amp, "big")
    assert r.status_code == 302
    for response in (requests.get(r.headers["Location"], stream=True), request_file(amp, "26umsb5", stream=True)):
        assert response.headers["Content-Encoding"] == "gzip"
        raw = response.raw.read(decode_content=False)
        assert raw[:2] == b"\x1f\x8b"
        assert gzip.decompress(raw).startswith(b'"amplitude_id","user_id"\r\n')


# --- errors, auth, concurrency ---------------------------------------------------------------
def test_bad_credentials_403(amp):
    r = requests.get(amp.base_url + "/api/3/cohorts", auth=("demo", "wrong"))
    assert r.status_code == 403
    message = "Invalid API/Secret Key combination"
    assert r.json() == {
        "error": {"http_code": 403, "type": "forbidden", "message": message, "metadata": {"details": message}}
    }
    assert requests.get(amp.base_url + "/api/2/export").status_code == 403


def test_concurrency_limit_429_and_forced_faults(amp):
    amp.sandbox.set_faults(delay_next=5, delay_seconds=0.8)
    with ThreadPoolExecutor(5) as pool:
        slow = [pool.submit(requests.get, amp.base_url + "/api/3/cohorts", auth=amp.auth) for _ in range(5)]
        deadline = time.time() + 2
        while amp.sandbox.project.inflight < 5 and time.time() < deadline:
            time.sleep(0.01)
        r = api(amp, "/api/3/cohorts")
        assert r.status_code == 429 and r.json()["error"]["http_code"] == 429
        assert [f.result().status_code for f in slow] == [200] * 5
    assert api(amp, "/api/3/cohorts").status_code == 200  # slots were released
    amp.sandbox.set_faults(fail_next=2, fail_status=504)
    assert [api(amp, "/api/3/cohorts").status_code for _ in range(3)] == [504, 504, 200]
    r = requests.post(amp.base_url + "/_sandbox/faults", json={"fail_next": 1, "fail_status": 502})
    assert r.status_code == 200 and r.json()["fail_next"] == 1
    r = api(amp, "/api/3/cohorts")
    assert r.status_code == 502 and r.json()["error"]["type"] == "bad_gateway"
    assert requests.post(amp.base_url + "/_sandbox/faults", json={"bogus": 1}).status_code == 400
    stats = requests.get(amp.base_url + "/_sandbox/stats").json()
    assert stats["requests"]["cohorts"] == 11 and stats["responses"]["cohorts"]["429"] == 1


# --- Export API ------------------------------------------------------------------------------
def test_export_zip_layout_and_events(amp):
    r = export(amp, "20240101T08", "20240101T09")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    pid = amp.sandbox.project.project_id
    assert archive.namelist() == [f"{pid}/{pid}_2024-01-01_{h}#{n}.json.gz" for h in (8, 9) for n in (0, 1)]
    events = [
        json.loads(line)
        for name in archive.namelist()
        for line in gzip.decompress(archive.read(name)).decode().splitlines()
    ]
    assert len(events) == 600 and len({e["uuid"] for e in events}) == 600
    first = events[0]
    for key in (
        "server_received_time",
        "app",
        "device_carrier",
        "city",
        "user_id",
        "uuid",
        "event_time",
        "platform",
        "os_version",
        "amplitude_id",
        "processed_time",
        "version_name",
        "ip_address",
        "paying",
        "dma",
        "group_properties",
        "user_properties",
        "client_upload_time",
        "$insert_id",
        "event_type",
        "library",
        "device_type",
        "start_version",
        "location_lng",
        "server_upload_time",
        "event_id",
        "location_lat",
        "os_name",
        "groups",
        "event_properties",
        "data",
        "device_id",
        "language",
        "country",
        "region",
        "session_id",
        "device_family",
        "sample_rate",
        "client_event_time",
        "user_creation_time",
        "device_manufacturer",
        "device_brand",
        "device_model",
        "amplitude_event_type",
        "is_attribution_event",
        "adid",
        "idfa",
        "$schema",
    ):
        assert key in first, key
    assert first["app"] == pid and TS.match(first["server_upload_time"]) and TS.match(first["event_time"])
    assert all(e["server_upload_time"].startswith(("2024-01-01 08:", "2024-01-01 09:")) for e in events)
    assert {e["event_type"] for e in events} >= {"Song Played", "Add To Cart"}
    anonymous = [e for e in events if e["user_id"] is None]
    assert anonymous and all(e["device_id"] for e in anonymous)


def test_export_status_codes(amp):
    assert export(amp, "20231231T00", "20231231T23").status_code == 404  # before data start
    assert export(amp, "20300101T00", "20300101T01").status_code == 404  # future
    r = export(amp, "2024-01-01", "20240101T01")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid"
    amp.sandbox.set_faults(export_max_bytes=300 * 250 * 10)
    assert export(amp, "20240101T00", "20240101T09").status_code == 200
    r = export(amp, "20240101T00", "20240101T10")
    assert r.status_code == 400 and "4GB" in r.json()["error"]["message"]
    amp.sandbox.set_faults(export_timeout_hours=3)
    assert export(amp, "20240101T00", "20240101T03").status_code == 504
    assert export(amp, "20240101T00", "20240101T02").status_code == 200
    assert amp.sandbox.request_count("export") == 7


def test_export_faults(amp):
    amp.sandbox.set_faults(export_truncate=True)
    r = export(amp, "20240101T00", "20240101T01")
    assert r.status_code == 200
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(r.content))
    amp.sandbox.set_faults(export_truncate=False, export_corrupt_member=True, export_malformed_lines=3)
    archive = zipfile.ZipFile(io.BytesIO(export(amp, "20240101T00", "20240101T01").content))
    *good, bad = archive.namelist()
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(archive.read(bad))
    lines = gzip.decompress(archive.read(good[0])).decode().splitlines()
    broken = 0
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            broken += 1
    assert broken == 3 and len(lines) == 203


# --- streaming, datagen, CLI helpers -----------------------------------------------------------
def stream_rows(amp, cohort_id):
    """Download a cohort file with props, streaming; returns (rows, bytes)."""
    rid = api(amp, f"/api/5/cohorts/request/{cohort_id}", params={"props": 1}).json()["request_id"]
    api(amp, f"/api/5/cohorts/request-status/{rid}")
    api(amp, f"/api/5/cohorts/request-status/{rid}")
    with api(amp, f"/api/5/cohorts/request/{rid}/file", stream=True) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        total = rows = 0
        for chunk in r.iter_content(1 << 16):
            total += len(chunk)
            rows += chunk.count(b"\n")
    return rows, total


def test_large_cohort_streams_with_bounded_memory(amp):
    amp.sandbox.set_faults(redirect="never")
    amp.sandbox.add_cohort("huge", "Huge", size=200_000)
    amp.sandbox.add_cohort("traced", "Traced", size=40_000)
    rows, total = stream_rows(amp, "huge")
    assert rows == 200_001 and total > 40_000_000
    # tracemalloc makes the big-int hashing ~20x slower, so measure a smaller (8 MB) file.
    tracemalloc.start()
    try:
        rows, total = stream_rows(amp, "traced")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == 40_001 and total > 8_000_000
    assert peak < 4_000_000, peak  # server + client together hold only a few batches


def test_datagen_is_deterministic():
    pop_a, pop_b = Population(3), Population(3)
    spec = CohortSpec(1000, start=5, version=2, churn=0.2)
    cols = csv_columns(True, custom_keys=list(pop_a.user_properties))
    assert "".join(generated_csv(pop_a, spec, cols)) == "".join(generated_csv(pop_b, spec, cols))
    assert pop_a.member(42) == pop_b.member(42) and pop_a.member(42)["amplitude_id"] == 10_000_042
    src = EventSource(datetime(2024, 1, 1), hours=1, events_per_hour=50)
    assert list(src.lines(pop_a, 1, datetime(2024, 1, 1))) == list(src.lines(pop_b, 1, datetime(2024, 1, 1)))


def test_demo_sandbox_builder():
    sandbox = build_demo_sandbox(cohorts=3, members=100, events_days=1, events_per_hour=10)
    assert [c.size for c in sandbox.project.cohorts.values()] == [100, 100, 100]
    with running_amplitude_sandbox(sandbox) as running:
        assert threading.active_count() > 1
        assert len(requests.get(running.base_url + "/api/3/cohorts", auth=running.auth).json()["cohorts"]) == 3
