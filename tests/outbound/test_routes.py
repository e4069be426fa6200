"""SSRF by every route a tenant has: the URL fields of destinations and Amplitude projects (console
form, API, admin), test connections to names that resolve inward, URLs assembled from config paths,
the cohort file's redirect, and refused / timed-out / hung-up ports that must read the same.

Non-loopback answers come from the fake resolver, and the network fence (tests/network.py) fails any
test that tries to connect outside loopback: with the guard broken these tests fail, they do not send.
"""

import json
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model

from integrations.connectors.registry import connector_class
from integrations.delivery.actions import run_connection_test
from integrations.delivery.models import Destination, PartnerCall
from integrations.models import Authorization
from integrations.sources.models import AmplitudeProject, ImportRun, RunStatus
from tests.conftest import key_client
from tests.delivery.helpers import destination
from tests.network import fake_dns  # noqa: F401  (fixture)
from tests.outbound.listeners import Listener, TcpListener, closed_port
from tests.sources.conftest import amp, amplitude_auth, cohort_job, fast_sources, project  # noqa: F401
from tests.sources.test_cohort_import import run_now

HINT = "(set OUTBOUND_ALLOWED_NETWORKS to allow it)"
INWARD_URLS = [
    ("https://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local address"),
    ("https://10.1.2.3/", "refused: 10.1.2.3 is a private address"),
    ("https://127.0.0.1:8000/", "refused: 127.0.0.1 is a loopback address"),
    ("https://localhost/", "refused: localhost is 127.0.0.1, a loopback address"),
    ("https://0.0.0.0/", "refused: 0.0.0.0 is an unspecified"),
    ("https://[::1]/", "refused: ::1 is a loopback address"),
    ("https://[::ffff:10.0.0.1]/", "refused: ::ffff:10.0.0.1 is an IPv4-mapped form of 10.0.0.1, a private"),
    ("https://[fd00::1]/", "refused: fd00::1 is a unique-local (private) address"),
    ("http://partner.example/", "refused: http:// is not allowed: only https"),
]
# Each kind's URL field, in a config that is valid with a public URL.
CONFIGS = {
    "list_api": ("base_url", {}),
    "traits_api": ("url", {}),
    "cohort_webhook": ("url", {}),
    "clevertap": ("base_url", {}),
    "kahuna": ("base_url", {}),
    "kochava": (
        "base_url",
        {
            "app_guid": "kotest",
            "event_types": ["Purchase"],
            "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address", "idfa": "data.idfa"},
        },
    ),
}


@pytest.fixture
def strict(settings):
    """Production defaults: nothing allow-listed, https only."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_ALLOW_HTTP = False
    return settings


@pytest.fixture
def ops_admin(acme, client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


# ---- URL fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_the_api_refuses_inward_urls_for_every_kind(strict, acme, acme_management_key, kind):
    field, extra = CONFIGS[kind]
    # A partner that fixes its host takes only that host; the others take the customer's public URL.
    hosts = connector_class(kind).hosts
    public = next(iter(hosts.values())).url if hosts else "https://partner.example/v1"
    api = key_client(acme_management_key)
    ok = api.post(
        "/api/v1/destinations/", {"kind": kind, "name": "public", "config": {field: public, **extra}}, format="json"
    )
    assert ok.status_code == 201, ok.json()
    for url, message in INWARD_URLS:
        body = {"kind": kind, "name": f"inward {url}", "config": {field: url, **extra}}
        created = api.post("/api/v1/destinations/", body, format="json")
        assert created.status_code == 400, (url, created.json())
        assert field in created.json()["error"]["fields"]["config"][0] and message in created.json()["error"]["message"]
        patched = api.patch(f"/api/v1/destinations/{ok.json()['id']}/", {"config": body["config"]}, format="json")
        assert patched.status_code == 400 and message in json.dumps(patched.json())
    assert Destination.objects.get(pk=ok.json()["id"]).config[field] == public
    assert Destination.objects.count() == 1


def test_the_console_form_refuses_an_inward_url_next_to_its_field(strict, client, alice, acme):
    client.force_login(alice)
    response = client.post(
        "/destinations/new/list_api/",
        {
            "name": "Metadata",
            "secret_api_key": "k3y-value",
            "cfg_base_url": "https://169.254.169.254/latest/meta-data/",
            "cfg_auth_mode": "basic",
            "cfg_batch_size": "100",
        },
    )
    assert response.status_code == 400
    assert 'id="cfg_base_url-error">refused: 169.254.169.254 is a link-local address' in response.content.decode()
    assert not Destination.objects.exists() and not Authorization.objects.exists()


def test_the_admin_refuses_an_inward_destination_url(strict, ops_admin, acme):
    response = ops_admin.post(
        "/admin/delivery/destination/add/",
        {
            "workspace": acme.pk,
            "kind": "traits_api",
            "name": "Inward",
            "config": json.dumps({"url": "https://[::ffff:10.0.0.1]/identify"}),
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "refused: ::ffff:10.0.0.1 is an IPv4-mapped form of 10.0.0.1, a private address" in response.content.decode()
    assert not Destination.objects.exists()


def test_amplitude_base_url_is_refused_by_the_api_the_console_and_the_admin(
    strict, acme, alice, client, acme_management_key
):
    auth = Authorization(workspace=acme, provider="amplitude", label="Amplitude")
    auth.set_secrets({"api_key": "a", "secret_key": "b"})
    auth.save()
    api = key_client(acme_management_key)
    created = api.post(
        "/api/v1/amplitude-projects/",
        {"label": "Inward", "region": "us", "base_url": "https://169.254.169.254/", "authorization": auth.pk},
        format="json",
    )
    assert created.status_code == 400
    assert created.json()["error"]["fields"]["base_url"] == [f"refused: 169.254.169.254 is a link-local address {HINT}"]
    client.force_login(alice)
    form = client.post(
        "/sources/",
        {
            "label": "Console",
            "description": "",
            "api_key": "a",
            "secret_key": "b",
            "region": "us",
            "base_url": "https://[::1]:9000/",
        },
    )
    assert f"refused: ::1 is a loopback address {HINT}" in form.content.decode()
    admin_user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    admin_form = client.post(
        "/admin/sources/amplitudeproject/add/",
        {
            "workspace": acme.pk,
            "label": "Admin",
            "region": "us",
            "base_url": "https://10.0.0.9/",
            "authorization": auth.pk,
        },
    )
    assert f"refused: 10.0.0.9 is a private address {HINT}" in admin_form.content.decode()
    assert not AmplitudeProject.objects.exists()


# ---- names resolving inward, URLs assembled from paths ------------------------------------------


def test_test_connection_to_a_name_resolving_to_a_private_address_is_refused(
    strict,
    fake_dns,  # noqa: F811
    acme,
    acme_management_key,
):
    fake_dns.add("lists.partner.example", "10.1.2.3")
    dest = destination(acme, "list_api", {"base_url": "https://lists.partner.example"}, secrets={"api_key": "k3y"})
    tested = key_client(acme_management_key).post(f"/api/v1/destinations/{dest.pk}/test-connection/")
    expected = f"refused: lists.partner.example resolves to 10.1.2.3, a private address {HINT}"
    assert tested.json() == {"ok": False, "message": expected}
    assert PartnerCall.objects.get(destination=dest).error == expected


def test_a_name_resolving_to_loopback_reaches_nothing(strict, fake_dns, acme, alice, client):  # noqa: F811
    inside = Listener()  # a real loopback service the name points at
    try:
        strict.OUTBOUND_ALLOW_HTTP = True  # even with plain http allowed, loopback is not
        fake_dns.add("hooks.partner.example", "127.0.0.1")
        dest = destination(
            acme,
            "cohort_webhook",
            {"url": f"http://hooks.partner.example:{inside.port}/hook"},
            secrets={"header_value": "v4lue"},
            fields={"header_name": "X-Token"},
        )
        client.force_login(alice)
        html = client.post(f"/destinations/{dest.pk}/test/").content.decode()
        assert f"refused: hooks.partner.example resolves to 127.0.0.1, a loopback address {HINT}" in html
        assert inside.seen == []
    finally:
        inside.close()


def test_a_config_path_cannot_turn_the_host_into_user_info(strict, acme):
    listener = TcpListener(hang_up=True)
    try:
        dest = destination(
            acme,
            "list_api",
            {"base_url": "https://partner.example", "add_path": f"@127.0.0.1:{listener.port}/lists/{{list_id}}/add"},
            secrets={"api_key": "k3y"},
        )
        ok, message = run_connection_test(dest)
        assert not ok and message.startswith("refused: a user name or password in the URL")
    finally:
        listener.close()


def test_amplitude_test_connection_to_a_name_resolving_to_metadata_is_refused(
    strict,
    fake_dns,  # noqa: F811
    acme,
    alice,
    client,
    acme_management_key,
):
    fake_dns.add("amplitude.proxy.example", "169.254.169.254")
    auth = Authorization(workspace=acme, provider="amplitude", label="Amplitude")
    auth.set_secrets({"api_key": "a", "secret_key": "b"})
    auth.save()
    proxied = AmplitudeProject.objects.create(
        workspace=acme, label="Proxy", base_url="https://amplitude.proxy.example", authorization=auth
    )
    expected = f"refused: amplitude.proxy.example resolves to 169.254.169.254, a link-local address {HINT}"
    tested = key_client(acme_management_key).post(f"/api/v1/amplitude-projects/{proxied.pk}/test-connection/")
    assert tested.status_code == 502 and tested.json()["error"]["message"] == expected
    client.force_login(alice)
    assert expected in client.post(f"/sources/{proxied.pk}/test/").content.decode()


# ---- the cohort file's redirect ----------------------------------------------------------------------


def test_a_cohort_file_redirect_inward_is_refused_and_its_answer_never_read(
    amp,  # noqa: F811
    cohort_job,  # noqa: F811
    settings,
    acme_management_key,
):
    internal = Listener(
        answer=lambda seen: (400, {"Content-Type": "text/html"}, b"<html>INTERNAL-ADMIN-PANEL db=prod</html>")
    )
    try:
        settings.OUTBOUND_ALLOWED_NETWORKS = [urlsplit(amp.base_url).netloc]  # the sandbox's port only
        amp.sandbox.add_cohort("big1", "Big", size=50)
        amp.sandbox.set_faults(redirect="always", s3_origin=internal.url)
        run = run_now(cohort_job)
        assert run.status == RunStatus.FAILED
        assert f"refused: 127.0.0.1 is a loopback address {HINT}" in run.error
        assert internal.seen == []
        listed = key_client(acme_management_key).get("/api/v1/import-runs/").json()["results"]
        assert "INTERNAL-ADMIN-PANEL" not in json.dumps(listed)
    finally:
        internal.close()


def test_a_cohort_file_redirect_to_a_name_resolving_inward_is_refused(
    amp,  # noqa: F811
    cohort_job,  # noqa: F811
    settings,
    fake_dns,  # noqa: F811
):
    settings.OUTBOUND_ALLOWED_NETWORKS = [urlsplit(amp.base_url).netloc]
    fake_dns.add("bucket.s3.example", "10.20.30.40")
    amp.sandbox.add_cohort("big2", "Big", size=50)
    amp.sandbox.set_faults(redirect="always", s3_origin="https://bucket.s3.example")
    run = run_now(cohort_job)
    assert run.status == RunStatus.FAILED
    assert f"refused: bucket.s3.example resolves to 10.20.30.40, a private address {HINT}" in run.error
    assert ImportRun.objects.get(pk=run.pk).error == run.error


# ---- no port scanning -------------------------------------------------------------------------------


def test_refused_timed_out_and_hung_up_ports_read_the_same(settings, acme):
    """A user cannot tell a closed port from an open one: one message; ops get the detail in the admin."""
    settings.DELIVERY_READ_TIMEOUT = 0.5
    silent, hang_up = TcpListener(hang_up=False), TcpListener(hang_up=True)
    try:
        messages, details = [], []
        for name, port in (("closed", closed_port()), ("silent", silent.port), ("hang-up", hang_up.port)):
            dest = destination(acme, "list_api", {"base_url": f"http://127.0.0.1:{port}"}, name=name)
            ok, message = run_connection_test(dest)
            messages.append((ok, message))
            details.append(PartnerCall.objects.get(destination=dest).error_detail)
        assert messages == [(False, "Could not connect to the partner.")] * 3
        assert all(details) and len(set(details)) == 3
    finally:
        silent.close()
        hang_up.close()
