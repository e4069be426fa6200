"""What users read of a partner's (or Amplitude's) answer: the status and the partner's own error code
and message, parsed and bounded, never the raw body. Ops read the raw start in the admin."""

import json

import pytest

from integrations.delivery.models import PartnerCall
from integrations.models import Authorization
from integrations.sources.models import AmplitudeProject
from tests.conftest import key_client
from tests.delivery.helpers import destination
from tests.outbound.listeners import Listener

RAW = "RAW-PARTNER-BODY-7f3a"
ANSWERS = [
    # (status, content type, body): a JSON error with the partner's code and message plus a dump, an
    # HTML error page, a 2xx whose body is not for users, a 401 page (disables the destination).
    (
        500,
        "application/json",
        json.dumps({"error": {"code": "E_LIST", "message": "list store unavailable"}, "trace": RAW}),
    ),
    (502, "text/html", f"<html><body><h1>Bad gateway</h1><pre>{RAW}</pre></body></html>"),
    (200, "text/plain", f"ok {RAW}"),
    (401, "text/html", f"<html>{RAW} login required</html>"),
]


@pytest.fixture
def partner():
    queue = list(ANSWERS)

    def answer(seen):
        status, content_type, body = queue.pop(0)
        return status, {"Content-Type": content_type}, body.encode()

    listener = Listener(answer=answer)
    yield listener
    listener.close()


def test_viewers_read_the_partners_code_and_message_never_its_raw_answer(
    partner, acme, alice, vera, client, acme_management_key, api, django_user_model
):
    dest = destination(acme, "list_api", {"base_url": partner.url}, secrets={"api_key": "k3y-value"})
    owner = key_client(acme_management_key)
    results = [owner.post(f"/api/v1/destinations/{dest.pk}/test-connection/").json() for _ in ANSWERS]
    assert results[0] == {"ok": False, "message": "HTTP 500: code E_LIST: list store unavailable"}
    assert results[1] == {"ok": False, "message": "HTTP 502: Bad Gateway"}
    assert results[2]["ok"] is True
    assert results[3] == {"ok": False, "message": "HTTP 401: Unauthorized"}
    dest.refresh_from_db()
    assert dest.last_error == "HTTP 401: Unauthorized"

    summaries = [c.response_summary for c in PartnerCall.objects.filter(destination=dest).order_by("id")]
    assert summaries == [
        "HTTP 500 Internal Server Error: code E_LIST: list store unavailable",
        "HTTP 502 Bad Gateway",
        "HTTP 200 OK",
        "HTTP 401 Unauthorized",
    ]

    # A viewer, through the API (session) and the console: summaries only.
    api.force_authenticate(vera)
    for url in (f"/api/v1/destinations/{dest.pk}/calls/", f"/api/v1/destinations/{dest.pk}/", "/api/v1/destinations/"):
        answer = api.get(url, HTTP_X_WORKSPACE=acme.slug)
        assert answer.status_code == 200 and RAW not in answer.content.decode(), url
    calls = api.get(f"/api/v1/destinations/{dest.pk}/calls/").json()
    assert {c["response_summary"] for c in calls} == set(summaries)
    assert all("response_excerpt" not in c and "error_detail" not in c for c in calls)
    client.force_login(vera)
    page = client.get(f"/destinations/{dest.pk}/").content.decode()
    assert "code E_LIST: list store unavailable" in page and RAW not in page
    assert RAW not in client.get("/destinations/").content.decode()

    # Ops, in the admin: the raw start of each answer.
    ops = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(ops)
    for call in PartnerCall.objects.filter(destination=dest):
        assert RAW in client.get(f"/admin/delivery/partnercall/{call.pk}/change/").content.decode()


def test_amplitude_errors_show_its_message_never_its_page(acme, alice, client, acme_management_key, settings):
    settings.SOURCES_RETRY_BACKOFF = 0.0
    settings.SOURCES_HTTP_RETRIES = 0
    answers = [
        (500, "text/html", f"<html>{RAW} stack trace</html>"),
        (
            400,
            "application/json",
            json.dumps({"error": {"message": "Invalid request", "metadata": {"details": "bad id"}}, "dump": RAW}),
        ),
        (
            400,
            "application/json",
            "[" * 20_000 + "]" * 20_000,
        ),  # too deep to parse (under the read cap): no crash, no echo
    ]

    def answer(seen):
        status, content_type, body = answers.pop(0)
        return status, {"Content-Type": content_type}, body.encode()

    amplitude = Listener(answer=answer)
    try:
        auth = Authorization(workspace=acme, provider="amplitude", label="Amplitude")
        auth.set_secrets({"api_key": "a", "secret_key": "b"})
        auth.save()
        project = AmplitudeProject.objects.create(
            workspace=acme, label="Fake", base_url=amplitude.url, authorization=auth
        )
        api = key_client(acme_management_key)
        first = api.post(f"/api/v1/amplitude-projects/{project.pk}/test-connection/").json()["error"]["message"]
        assert first == "Amplitude failed with HTTP 500 after 1 tries: Internal Server Error"
        second = api.post(f"/api/v1/amplitude-projects/{project.pk}/test-connection/").json()["error"]["message"]
        assert second == "Amplitude answered HTTP 400: Invalid request (bad id)"
        client.force_login(alice)
        third = client.post(f"/sources/{project.pk}/test/").content.decode()
        assert "Amplitude answered HTTP 400: Bad Request" in third and "[[[" not in third
    finally:
        amplitude.close()
