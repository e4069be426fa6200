"""Credentials never readable back: for every connector and each of its auth styles, a partner that
echoes what it received (raw, base64, URL-encoded, JSON-escaped) leaves no credential in the dry run,
the partner-call log, the connection test's answer, the destination's last error or a run's error.

The partner is a real HTTP server on 127.0.0.1 (tests.outbound.listeners) that answers 401 with a JSON
error quoting every request header in all those forms, as a careless partner's debug answer would.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from integrations.delivery.actions import run_connection_test
from integrations.delivery.models import PartnerCall
from integrations.delivery.planning import dry_run
from integrations.masking import Masker, encoded_forms
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync
from tests.outbound.listeners import Listener

# Characters that URL-encoding and JSON-escaping change, so each encoded form differs from the raw one.
SECRET = 'pa"ss/w+rd=\\é-1'
OTHER = "an0ther/secret+val"
MAPPING = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "idfa": "device_id"}


STANDARD = {"host", "user-agent", "accept-encoding", "accept", "connection", "content-length", "content-type"}
# How the partner quotes the headers it received: each form a credential could come back in.
FORMS = {
    "raw": lambda value: value,
    "base64": lambda value: base64.b64encode(value.encode()).decode(),
    "url-encoded": lambda value: quote(value, safe=""),
    "form-encoded": quote_plus,
    # The raw excerpt ops read keeps the JSON escapes of the body: \" \\ \/ and \u00e9.
    "json-escaped": lambda value: json.dumps(value)[1:-1],
}


class Echo:
    """Answers 401 with a JSON error quoting the request's own headers in the current form."""

    def __init__(self) -> None:
        self.form = "raw"

    def __call__(self, seen) -> tuple[int, dict, bytes]:
        encode = FORMS[self.form]
        quoted = []
        for name, value in seen.headers.items():
            if name not in STANDARD:
                quoted.append(f"{name}={encode(value)}")
                if value.lower().startswith("basic "):  # the token alone, and decoded user:password
                    quoted += [encode(value[6:]), encode(base64.b64decode(value[6:]).decode())]
        message = "refused: " + " ".join(quoted)
        body = json.dumps({"code": "bad_auth", "message": message}, ensure_ascii=self.form == "json-escaped")
        return 401, {"Content-Type": "application/json"}, body.encode()


@pytest.fixture
def echo_partner():
    answer = Echo()
    listener = Listener(answer=answer)
    listener.echo = answer
    yield listener
    listener.close()


# kind, config (url filled in), secrets, plain fields: one row per auth style of every connector.
STYLES = [
    ("list_api basic", "list_api", {"base_url": "{url}", "auth_mode": "basic"}, {"api_key": SECRET}, {}),
    ("list_api bearer", "list_api", {"base_url": "{url}", "auth_mode": "bearer"}, {"api_key": SECRET}, {}),
    (
        "list_api custom header",
        "list_api",
        {"base_url": "{url}", "auth_mode": "header", "auth_header": "X-Partner-Pass"},
        {"api_key": SECRET},
        {},
    ),
    (
        "traits_api custom header",
        "traits_api",
        {"url": "{url}/identify", "auth_mode": "header", "auth_header": "X-Write"},
        {"api_key": SECRET},
        {},
    ),
    ("traits_api basic", "traits_api", {"url": "{url}/identify"}, {"api_key": SECRET}, {}),
    (
        "webhook header",
        "cohort_webhook",
        {"url": "{url}/hook"},
        {"header_value": SECRET},
        {"header_name": "X-Webhook-Password"},
    ),
    ("clevertap passcode", "clevertap", {"base_url": "{url}"}, {"passcode": SECRET}, {"account_id": "ACC-1"}),
    ("kahuna basic", "kahuna", {"base_url": "{url}"}, {"secret_key": SECRET, "api_key": OTHER}, {}),
    (
        "kochava custom headers",
        "kochava",
        {
            "base_url": "{url}",
            "app_guid": "koapp",
            "api_key_header": "X-Kv-Id",
            "api_secret_header": "X-Kv-Pass",
            "mapping": MAPPING,
            "event_types": ["Purchase"],
        },
        {"api_key": SECRET, "api_secret": OTHER},
        {},
    ),
]


def readable_forms(secrets: dict) -> set[str]:
    """Each secret as a person could read it back: raw and in every encoding the echo uses."""
    return {form for value in secrets.values() for form in encoded_forms(value)}


def leaks(text: str, forms: set[str]) -> list[str]:
    return sorted(form for form in forms if form in text)


@pytest.mark.django_db
@pytest.mark.parametrize(("style", "kind", "config", "secrets", "fields"), STYLES, ids=[s[0] for s in STYLES])
def test_no_credential_in_dry_run_call_log_or_errors(acme, echo_partner, style, kind, config, secrets, fields):
    config = {
        key: value.format(url=echo_partner.url) if isinstance(value, str) else value for key, value in config.items()
    }
    dest = destination(acme, kind, config, secrets=secrets, fields=fields)
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(3)))
    job = job_for(segment, dest)
    forms = readable_forms(secrets)

    preview = json.dumps(dry_run(job), ensure_ascii=False)
    assert not leaks(preview, forms), f"dry run shows {leaks(preview, forms)}"

    readable = {}
    for form in FORMS:
        echo_partner.echo.form = form
        ok, message = run_connection_test(dest)
        dest.refresh_from_db()
        readable |= {f"test result ({form})": message, f"last error ({form})": dest.last_error}
    assert not ok
    echo_partner.echo.form = "base64"
    run = sync(job)
    run.refresh_from_db()
    assert echo_partner.seen, "the partner was called"
    sent = [v for seen in echo_partner.seen for v in seen.headers.values()]
    travelled = Masker([*secrets.values()])
    assert any(travelled(v) != v or v.lower().startswith("basic ") for v in sent), "no credential was sent"
    calls = list(PartnerCall.objects.filter(destination=dest).values())
    assert calls
    readable |= {
        "run error": run.error,
        **{f"call {c['id']}": json.dumps(c, default=str, ensure_ascii=False) for c in calls},
    }
    # The echo did reach what people read (else masking would have had nothing to do).
    assert all("refused" in text for name, text in readable.items() if name.startswith("test result"))
    for where, text in readable.items():
        assert not leaks(text, forms), f"{style}: {where} shows {leaks(text, forms)}: {text[:300]}"


def test_the_masker_covers_every_form_of_a_basic_header():
    header = "Basic " + base64.b64encode(b"key-123:" + SECRET.encode()).decode()
    mask = Masker([SECRET, header])
    token = header[6:]
    for text in (token, token.rstrip("="), quote(token, safe=""), json.dumps(SECRET), quote_plus(SECRET)):
        assert "••••••••" in mask(f"echo {text} end") and text not in mask(f"echo {text} end")
