"""dev.py run prints its banner only once /healthz answers ok (which needs a Celery worker's heartbeat)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config.devctl import wait_for_worker


def _health(worker_ok: bool) -> tuple[int, bytes]:
    # What an anonymous caller gets: the status only.
    return (200 if worker_ok else 503), json.dumps({"status": "ok" if worker_ok else "down"}).encode()


@pytest.fixture
def healthz():
    """A real HTTP server answering /healthz from a script: worker down for `down_for` calls, then up."""
    state = {"calls": 0, "down_for": 2}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["calls"] += 1
            status, body = _health(state["calls"] > state["down_for"])
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_waits_through_503_until_the_worker_answers(healthz):
    port, state = healthz
    assert wait_for_worker(port, [], threading.Event(), timeout=20)
    assert state["calls"] == 3  # two 503 "worker down" answers, then the first ok


def test_gives_up_after_the_timeout_when_the_worker_never_answers(healthz):
    port, state = healthz
    state["down_for"] = 10**6
    started = time.monotonic()
    assert not wait_for_worker(port, [], threading.Event(), timeout=1.5)
    assert state["calls"] >= 2 and time.monotonic() - started < 10


def test_stops_at_once_when_asked(healthz):
    port, state = healthz
    state["down_for"] = 10**6
    stop = threading.Event()
    stop.set()
    assert not wait_for_worker(port, [], stop, timeout=60)
    assert state["calls"] == 0


def test_a_server_that_is_not_there_is_not_an_error():
    # Nothing listens on the port (yet): treated as "not ready", never raised.
    assert not wait_for_worker(1, [], threading.Event(), timeout=1)


def test_the_demo_runs_with_debug_off_and_keeps_its_generated_keys(tmp_path, monkeypatch):
    import stat

    from config import devctl

    monkeypatch.setattr(devctl, "DATA", tmp_path)
    monkeypatch.setattr(devctl, "DEMO_KEYS", tmp_path / "demo-keys.json")
    first = devctl.demo_env()
    assert first["DEBUG"] == "0" and first["STATIC_ROOT"] == str(tmp_path / "static")
    assert stat.S_IMODE((tmp_path / "demo-keys.json").stat().st_mode) == 0o600
    again = devctl.demo_env()
    assert (
        again["SECRET_KEY"] == first["SECRET_KEY"] and again["FIELD_ENCRYPTION_KEYS"] == first["FIELD_ENCRYPTION_KEYS"]
    )


def test_the_demo_banner_repeats_the_login_and_the_inbound_key():
    from config.devctl import demo_banner

    seeded = ["  Kochava demo: ...", "  Demo inbound API key: cci_abc", '{"level": "INFO"}', "  Login: admin / pw"]
    banner = "\n".join(demo_banner("http://127.0.0.1:8000/", seeded))
    assert "Demo inbound API key: cci_abc" in banner and "Login: admin / pw" in banner
    assert "curl -u 'cci_abc:' http://127.0.0.1:8000/api/amplitude/lists" in banner
    assert ".data/logs" in banner and "INFO" not in banner and "Kochava" not in banner


@pytest.mark.django_db(transaction=True)
def test_only_a_database_with_saved_credentials_is_re_encrypted_on_the_demo_s_first_start(acme):
    """`dev.py run` re-encrypts an earlier demo's credentials once; a database that was only created
    (CI's migrations check, `dev.py manage`) has no tables, and a migrated one may hold no credentials:
    neither is an earlier demo, and the first start must go on to migrate and seed."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from config.devctl import saved_credentials_exist
    from integrations.models import Authorization
    from tests.conftest import test_database_url

    url = test_database_url()
    assert saved_credentials_exist(url) is False  # tables, no credentials
    Authorization.objects.create(workspace=acme, provider="clevertap", label="saved", fields={"account_id": "A"})
    assert saved_credentials_exist(url) is True
    parts = urlsplit(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS devctl_only_created")
        conn.execute("CREATE DATABASE devctl_only_created")
    try:
        empty = urlunsplit(parts._replace(path="/devctl_only_created"))
        assert saved_credentials_exist(empty) is False  # created, never migrated
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP DATABASE devctl_only_created")
