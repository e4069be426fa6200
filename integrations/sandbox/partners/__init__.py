"""Sandbox (fake) partner HTTP servers with fault injection, for tests, benchmarks and the demo.

    with running_partner("clevertap", account_id="ACC", passcode="PASS") as srv:
        requests.post(f"{srv.base_url}/1/upload", ...)
        srv.fake.set_faults(script=[{"status": 429, "headers": {"Retry-After": "1"}}])
        assert srv.fake.profiles[...]

Every fake also serves, without auth: GET /_sandbox/requests?path=<prefix>&method=&limit=100,
GET /_sandbox/stats, GET|POST /_sandbox/faults, POST /_sandbox/reset.
CLI: python -m integrations.sandbox.partners <kind> --port 8100 [-o key=json_value ...]
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .base import FakePartner, Faults, Reply, Request
from .clevertap import CleverTapFake
from .cohort_webhook import CohortWebhookFake
from .kahuna import KahunaFake
from .kochava import KochavaFake
from .list_api import ListApiFake
from .server import SandboxServer
from .traits_api import TraitsApiFake

KINDS: dict[str, type[FakePartner]] = {
    cls.kind: cls for cls in (ListApiFake, TraitsApiFake, CohortWebhookFake, CleverTapFake, KochavaFake, KahunaFake)
}

__all__ = [
    "KINDS",
    "CleverTapFake",
    "CohortWebhookFake",
    "FakePartner",
    "Faults",
    "KahunaFake",
    "KochavaFake",
    "ListApiFake",
    "Reply",
    "Request",
    "SandboxServer",
    "TraitsApiFake",
    "running_partner",
    "start_partner",
]


def start_partner(kind: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[SandboxServer, str]:
    """Start a fake in a daemon thread; port=0 picks a free port. Stop it with ``server.stop()``."""
    if kind not in KINDS:
        raise ValueError(f"unknown partner kind {kind!r}; choose from {sorted(KINDS)}")
    server = SandboxServer((host, port), KINDS[kind](**options))
    # Short poll interval: shutdown() waits up to one interval, and tests start many servers.
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{kind}", daemon=True
    ).start()
    return server, server.base_url


@contextmanager
def running_partner(kind: str, **options: Any) -> Iterator[SandboxServer]:
    """Yields the server; use ``.base_url`` and ``.fake``."""
    server, _ = start_partner(kind, **options)
    try:
        yield server
    finally:
        server.stop()
