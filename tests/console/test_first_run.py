"""A first-run path (issue 19.4): the dashboard's checklist ticks itself off from real state; members
who may not touch credentials read the setup pages and ask the owners and ops in one click (a mail
and a dashboard notice, rate-limited), instead of a hidden menu and a 403."""

import threading

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection

from integrations.delivery.models import SyncRun
from integrations.models import ApiKey
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync
from workspaces import setup_requests
from workspaces.models import Membership, SetupRequest


def steps(client) -> list[bool]:
    response = client.get("/")
    return [step.done for step in response.context["steps"]] if response.context["first_run"] else "gone"


def test_the_checklist_ticks_itself_off_and_goes_when_everything_is_done(client, alice, acme, partners):  # noqa: F811
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "Get started: 0 of 5 done" in page and "Connect Amplitude or copy the push settings" in page
    ApiKey.issue(acme, scope="inbound", name="amplitude")
    assert steps(client) == [True, False, False, False, False]
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 4)))
    assert steps(client) == [True, True, False, False, False]
    partner = partners("list_api")
    dest = destination(
        acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"}, name="Lists"
    )
    assert steps(client) == [True, True, True, False, False]
    job = job_for(segment, dest)
    assert steps(client) == [True, True, True, True, False]
    page = client.get("/").content.decode()
    assert f'href="/syncs/{job.pk}/">Watch the sync' in page
    assert sync(job).delivered == 3
    assert steps(client) == "gone"
    assert 'id="first-run"' not in client.get("/").content.decode()


def test_a_failed_run_does_not_tick_see_it_arrive(client, alice, acme):
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 3)))
    dest = destination(acme, "list_api", {"base_url": "http://127.0.0.1:9"}, secrets={"api_key": "k"})
    job = job_for(segment, dest)
    SyncRun.objects.create(workspace=acme, job=job, status="failed", delivered=0, error="could not connect")
    client.force_login(alice)
    assert steps(client)[-1] is False


SETUP_PAGES = ["/settings/authorizations/", "/settings/api-keys/", "/destinations/new/clevertap/", "/sources/"]


@pytest.mark.parametrize("path", SETUP_PAGES)
def test_a_marketer_reads_setup_pages_without_a_secret_or_a_field_value(client, bob, acme, acme_clevertap, path):
    ApiKey.issue(acme, scope="inbound", name="amplitude")
    client.force_login(bob)
    response = client.get(path)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ask an owner or ops" in html and 'id="ask-button"' in html
    assert "acme-passcode-s3cret" not in html and "ACME-1" not in html  # neither a secret nor a field value
    assert "Save destination" not in html and "Create key" not in html and "Save authorization" not in html
    nav = client.get("/").content.decode()
    assert 'href="/settings/authorizations/"' in nav and 'href="/settings/api-keys/"' in nav


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/settings/authorizations/", {"provider": "clevertap", "label": "x"}),
        ("/settings/api-keys/", {"name": "x", "scope": "inbound"}),
        ("/destinations/new/clevertap/", {"name": "x"}),
        ("/sources/", {"label": "x"}),
    ],
)
def test_a_marketer_posting_to_a_setup_page_is_refused(client, bob, acme, path, data):
    client.force_login(bob)
    assert client.post(path, data).status_code == 403


def test_owners_still_get_the_forms(client, alice, acme):
    client.force_login(alice)
    assert "Create key" in client.get("/settings/api-keys/").content.decode()
    assert "Save destination" in client.get("/destinations/new/clevertap/").content.decode()
    assert 'id="ask-button"' not in client.get("/sources/").content.decode()


def ask(client, topic="destination", kind="clevertap", next_="/destinations/new/clevertap/"):
    return client.post("/settings/ask/", {"topic": topic, "kind": kind, "next": next_})


def test_asking_mails_the_owners_and_ops_and_shows_on_their_dashboard_until_done(
    client, alice, bob, vera, oscar, acme, django_capture_on_commit_callbacks
):
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = ask(client)
    assert response.status_code == 302 and response["Location"] == "/destinations/new/clevertap/"
    request = SetupRequest.objects.get()
    assert (request.requested_by, request.topic, request.path) == (bob, "destination", "/destinations/new/clevertap/")
    assert request.detail.startswith("CleverTap")
    [message] = mail.outbox
    assert sorted(message.to) == ["alice@example.com", "oscar@example.com"]  # owners and ops, never viewers
    assert "bob asks you to add a destination" in message.subject and "Acme" in message.subject
    assert "http://testserver/destinations/new/clevertap/" in message.body
    assert "You asked" in client.get("/destinations/new/clevertap/").content.decode()  # no second button

    client.force_login(alice)
    dashboard = client.get("/").content.decode()
    assert 'id="setup-requests"' in dashboard and "bob asks you to add a destination: CleverTap" in dashboard
    client.post(f"/settings/requests/{request.pk}/done/", {"next": "/"})
    assert SetupRequest.objects.get().done_by == alice
    assert 'id="setup-requests"' not in client.get("/").content.decode()

    client.force_login(bob)
    assert client.post(f"/settings/requests/{request.pk}/done/").status_code == 403  # marketers cannot close them


def test_asking_is_rate_limited_per_person(client, bob, acme, alice, django_capture_on_commit_callbacks):
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        ask(client)
        again = ask(client)
    assert SetupRequest.objects.count() == 1 and len(mail.outbox) == 1
    assert "You asked for this just now" in client.get(again["Location"]).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        for topic, kind in [("amplitude", ""), ("inbound_key", ""), ("authorization", ""), ("destination", "kahuna")]:
            ask(client, topic, kind, next_="/")
        refused = ask(client, "destination", "kochava", next_="/")
    assert SetupRequest.objects.count() == 5 and len(mail.outbox) == 5
    assert "5 requests in the last hour" in client.get(refused["Location"]).content.decode()


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_make_one_request(acme, bob):
    membership = Membership.objects.get(user=bob, workspace=acme)
    barrier = threading.Barrier(2)
    results = []

    def click():
        try:
            barrier.wait()
            results.append(setup_requests.ask(membership, "amplitude", path="/sources/", page_url="http://x/sources/"))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert SetupRequest.objects.count() == 1
    assert sorted(result.request is None for result in results) == [False, True]


def test_viewers_cannot_ask_and_owners_need_not(client, vera, alice, acme):
    client.force_login(vera)
    assert ask(client).status_code == 403
    assert 'id="ask-button"' not in client.get("/settings/api-keys/").content.decode()
    client.force_login(alice)
    assert ask(client).status_code == 302
    assert not SetupRequest.objects.exists()


def test_nothing_from_the_form_reaches_the_mail_but_a_known_topic_and_kind(
    client, bob, alice, acme, django_capture_on_commit_callbacks
):
    client.force_login(bob)
    assert ask(client, topic="steal-the-keys").status_code == 302
    assert not SetupRequest.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        ask(client, topic="destination", kind="<script>evil</script>", next_="https://evil.example/")
    request = SetupRequest.objects.get()
    assert request.detail == "" and request.path == "/destinations/"
    assert "evil" not in mail.outbox[0].body


class BrokenMail(BaseEmailBackend):
    def send_messages(self, messages):
        raise ConnectionRefusedError("no mail server")


def test_a_mail_outage_keeps_the_request(client, bob, alice, acme, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.console.test_first_run.BrokenMail"
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = ask(client)
    assert response.status_code == 302 and SetupRequest.objects.count() == 1


def test_ops_find_the_requests_in_the_admin_too(admin_client, bob, acme, django_capture_on_commit_callbacks):
    membership = Membership.objects.get(user=bob, workspace=acme)
    setup_requests.ask(membership, "inbound_key", path="/settings/api-keys/", page_url="http://x/settings/api-keys/")
    page = admin_client.get("/admin/workspaces/setuprequest/")
    assert page.status_code == 200 and "create an inbound API key" in page.content.decode()
