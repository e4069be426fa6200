import base64
import gzip
import json
from pathlib import Path

import pytest
from django.test import Client

from integrations.inbound.apply import apply_pending, pending_scopes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict:
    return json.loads(fixture_bytes(name))


def push(
    path: str,
    body,
    key: str | None,
    *,
    auth: str = "basic",
    gzipped: bool = False,
    content_type: str = "application/json",
    client: Client | None = None,
    **headers,
):
    """POST like Amplitude does: the key as Basic username with an empty password (or a header / Bearer)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if gzipped:
        raw = gzip.compress(raw)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    if key is not None:
        if auth == "basic":
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        elif auth == "header":
            headers["HTTP_API_KEY"] = key
        else:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return (client or Client()).post(path, data=raw, content_type=content_type, **headers)


def drain() -> int:
    """Apply every pending batch, as the inbound workers would."""
    return sum(apply_pending(workspace_id, segment_id) for workspace_id, segment_id in pending_scopes())


@pytest.fixture
def list_id(acme_inbound_key):
    return push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
