"""Pushes through a real gunicorn started as in production: the repository's gunicorn.conf.py,
DEBUG off, behind a TLS proxy (the forwarded scheme header set as nginx sets it).

Amplitude's documented `api_key` header (issue 16.2) and chunked bodies without Content-Length
(issue 16.3b) only exist on a real socket: the test client never drops or chunks anything.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from audiences.models import Segment
from integrations.inbound.models import InboundBatch
from integrations.models import ApiKey
from tests.conftest import test_database_url
from tests.inbound.conftest import drain

ROOT = Path(__file__).resolve().parents[2]
PROXY = {"X-Forwarded-Proto": "https"}  # what the TLS proxy in front adds (BEHIND_TLS_PROXY=1)
pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(*config: str, **env) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": test_database_url(),
        "DEBUG": "0",
        "SECRET_KEY": Fernet.generate_key().decode() * 2,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "BEHIND_TLS_PROXY": "1",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DB_CONN_MAX_AGE": "0",  # no connection outlives a request: the test database can be dropped
        **env,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *config, "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--no-control-socket", "--log-level", "warning"],
        cwd=ROOT,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            requests.post(base + "/api/amplitude/lists", headers=PROXY, timeout=30)
            return server, base
        except requests.RequestException:
            time.sleep(0.2)
    stop(server)
    raise RuntimeError("gunicorn did not start")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def production(request):
    server, base = start_gunicorn("-c", str(ROOT / "gunicorn.conf.py"), INBOUND_MAX_BODY_BYTES="1000000")
    yield base
    stop(server)


@pytest.fixture
def inbound_key(acme) -> str:
    return ApiKey.issue(acme, scope="inbound", name="amplitude")[1]


LIST = b'{"name": "[Amplitude] Power users: 26umsb5"}'


def test_the_documented_api_key_header_works_under_the_production_configuration(production, inbound_key):
    response = requests.post(
        production + "/api/amplitude/lists",
        data=LIST,
        headers={**PROXY, "Content-Type": "application/json", "api_key": inbound_key},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert Segment.objects.get().external_id == "26umsb5"


def test_gunicorn_without_the_configuration_drops_api_key(acme, inbound_key, tmp_path):
    """Why gunicorn.conf.py exists: gunicorn's default drops the header, and the push is a 401.
    (An empty config file: without -c, gunicorn would read ./gunicorn.conf.py anyway.)"""
    empty = tmp_path / "empty.conf.py"
    empty.write_text("")
    server, base = start_gunicorn("-c", str(empty))
    try:
        response = requests.post(
            base + "/api/amplitude/lists",
            data=LIST,
            headers={**PROXY, "Content-Type": "application/json", "api_key": inbound_key},
            timeout=10,
        )
        assert response.status_code == 401
    finally:
        stop(server)


def test_a_chunked_body_without_content_length_is_read(production, inbound_key):
    list_id = requests.post(
        production + "/api/amplitude/lists",
        data=LIST,
        headers={**PROXY, "Content-Type": "application/json"},
        auth=(inbound_key, ""),
        timeout=10,
    ).json()["listId"]
    pieces = [b'{"userIds": [', b'"c1", "c2",', b' "c3"]}']
    response = requests.post(
        f"{production}/api/amplitude/lists/{list_id}/add",
        data=iter(pieces),  # a generator: requests sends Transfer-Encoding: chunked, no Content-Length
        headers={**PROXY, "Content-Type": "application/json"},
        auth=(inbound_key, ""),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.json()["received"] == 3
    drain()
    assert Segment.objects.get(pk=list_id).size == 3


def test_a_chunked_body_over_the_limit_is_413(production, inbound_key):
    """50 MB chunked, against a 1 MB limit, over a raw socket: the answer comes after at most the
    limit is read, while the sender may still be sending."""
    import base64

    token = base64.b64encode(f"{inbound_key}:".encode()).decode()
    host, port = production.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {token}\r\nX-Forwarded-Proto: https\r\nTransfer-Encoding: chunked\r\n\r\n"
    )

    def send():
        try:
            sock.sendall(head.encode())
            chunk = b"x" * 65536
            for _ in range(50 * 16):  # 50 MB
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before reading it all: that is the point

    sender = threading.Thread(target=send)
    sender.start()
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    sock.close()
    sender.join(timeout=60)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert not InboundBatch.objects.exists()
