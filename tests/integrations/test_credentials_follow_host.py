"""Saved credentials go only to the host they were entered for (integrations/credential_hosts.py).

Whoever may edit a destination or an Amplitude project must not be able to point it at a host of
their own and receive its saved credentials: a URL, host or region change that keeps the saved
authorization is refused in the console form, the management API and the admin, and nothing is
sent to the new host; partner hosts the partner fixes are chosen from a list, not typed.

Both hosts are real listeners on 127.0.0.1 (allowed by the tests' OUTBOUND_ALLOWED_NETWORKS): the
"attacker" listener records every request that reaches it.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.contrib.auth import get_user_model

from integrations.delivery.models import Destination
from integrations.models import Authorization
from integrations.sources.models import AmplitudeProject
from tests.conftest import key_client
from tests.delivery.helpers import destination
from tests.outbound.listeners import Listener

SECRET = "saved-partner-key-9d1"
NEW_SECRET = "new-partner-key-77a"


@pytest.fixture
def hosts():
    partner, attacker = Listener(), Listener()
    yield partner, attacker
    partner.close()
    attacker.close()


def sent_secrets(listener: Listener) -> str:
    """Everything the listener received in credential-carrying headers, decoded."""
    out = []
    for seen in listener.seen:
        for value in seen.headers.values():
            out.append(value)
            if value.lower().startswith("basic "):
                out.append(base64.b64decode(value[6:]).decode(errors="replace"))
    return " ".join(out)


def list_destination(acme, url: str) -> Destination:
    return destination(acme, "list_api", {"base_url": url}, secrets={"api_key": SECRET}, name="Lists")


def form_post(dest: Destination, **extra) -> dict:
    return {
        "name": dest.name,
        "authorization": str(dest.authorization_id),
        "cfg_base_url": dest.config["base_url"],
        "cfg_auth_mode": "basic",
        "cfg_batch_size": "100",
        **extra,
    }


# ---- destinations ----------------------------------------------------------------------------------


def test_the_console_form_refuses_a_new_url_without_the_credentials_and_sends_nothing_there(client, oscar, acme, hosts):
    partner, attacker = hosts
    dest = list_destination(acme, partner.url)
    client.force_login(oscar)
    response = client.post(f"/destinations/{dest.pk}/edit/", form_post(dest, cfg_base_url=attacker.url))
    assert response.status_code == 400
    assert "enter the credentials again" in response.content.decode()
    dest.refresh_from_db()
    assert dest.config["base_url"] == partner.url and dest.authorization.secrets == {"api_key": SECRET}
    assert attacker.seen == []  # not even the test before save went there with the saved key

    # Entered again, the new key goes to the new host (tested first), the old one never does.
    response = client.post(
        f"/destinations/{dest.pk}/edit/",
        form_post(dest, cfg_base_url=attacker.url, authorization="", secret_api_key=NEW_SECRET),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    dest.refresh_from_db()
    assert dest.config["base_url"] == attacker.url and dest.authorization.secrets == {"api_key": NEW_SECRET}
    assert NEW_SECRET in sent_secrets(attacker) and SECRET not in sent_secrets(attacker)


def test_the_api_refuses_a_new_url_with_the_saved_authorization(acme, acme_management_key, hosts):
    partner, attacker = hosts
    dest = list_destination(acme, partner.url)
    api = key_client(acme_management_key)
    url = f"/api/v1/destinations/{dest.pk}/"
    refused = api.patch(url, {"config": {**dest.config, "base_url": attacker.url}}, format="json")
    assert refused.status_code == 400, refused.json()
    assert "enter the credentials again" in refused.json()["error"]["fields"]["authorization"][0]
    tested = api.post(f"{url}test-connection/")
    assert tested.status_code == 200 and attacker.seen == []
    dest.refresh_from_db()
    assert dest.config["base_url"] == partner.url

    # Cleared: the new URL is saved without any credentials.
    cleared = api.patch(
        url, {"config": {**dest.config, "base_url": attacker.url}, "authorization": None}, format="json"
    )
    assert cleared.status_code == 200, cleared.json()
    api.post(f"{url}test-connection/")
    assert SECRET not in sent_secrets(attacker)
    assert Destination.objects.get(pk=dest.pk).authorization is None


def test_an_authorization_used_toward_another_host_cannot_be_attached(acme, acme_management_key, hosts):
    partner, attacker = hosts
    dest = list_destination(acme, partner.url)
    api = key_client(acme_management_key)
    body = {
        "kind": "list_api",
        "name": "Mine",
        "config": {"base_url": attacker.url},
        "authorization": dest.authorization_id,
    }
    created = api.post("/api/v1/destinations/", body, format="json")
    assert created.status_code == 400 and "used by “Lists”" in json.dumps(created.json(), ensure_ascii=False)
    # The same host may share it.
    same = api.post("/api/v1/destinations/", {**body, "config": {"base_url": partner.url}}, format="json")
    assert same.status_code == 201, same.json()


def test_the_admin_refuses_a_new_url_with_the_saved_authorization(client, acme, hosts):
    partner, attacker = hosts
    dest = list_destination(acme, partner.url)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post(
        f"/admin/delivery/destination/{dest.pk}/change/",
        {
            "workspace": acme.pk,
            "kind": "list_api",
            "name": dest.name,
            "config": json.dumps({**dest.config, "base_url": attacker.url}),
            "authorization": dest.authorization_id,
        },
    )
    assert response.status_code == 200 and "enter the credentials again" in response.content.decode()
    dest.refresh_from_db()
    assert dest.config["base_url"] == partner.url


def test_clevertap_region_is_a_choice_and_a_region_change_needs_the_passcode_again(
    acme, acme_management_key, client, alice
):
    dest = destination(
        acme,
        "clevertap",
        {"region": "eu1"},
        secrets={"passcode": SECRET},
        fields={"account_id": "ACC-1"},
        name="CT",
    )
    api = key_client(acme_management_key)
    url = f"/api/v1/destinations/{dest.pk}/"
    typed = api.patch(url, {"config": {**dest.config, "region": "evil.example"}}, format="json")
    assert typed.status_code == 400 and '\\"evil.example\\" is not a valid choice' in json.dumps(typed.json())
    moved = api.patch(url, {"config": {**dest.config, "region": "us1"}}, format="json")
    assert moved.status_code == 400 and "authorization" in moved.json()["error"]["fields"]
    # A host of CleverTap's own list only, or one the operator allowed: never one merely typed.
    own_host = api.patch(url, {"config": {**dest.config, "base_url": "https://ct-proxy.example"}}, format="json")
    assert own_host.status_code == 400 and "choose it from the list" in json.dumps(own_host.json())
    client.force_login(alice)
    form = client.get("/destinations/new/clevertap/").content.decode()
    assert '<select id="cfg_region"' in form and 'name="cred_region"' not in form  # asked once, chosen
    assert 'name="cfg_base_url"' not in form  # the region decides the host


@pytest.mark.parametrize("kind", ["kahuna", "kochava"])
def test_fixed_partner_hosts_are_chosen_not_typed(acme, acme_management_key, client, alice, kind):
    extra = (
        {
            "app_guid": "ko",
            "event_types": ["Purchase"],
            "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address", "idfa": "device_id"},
        }
        if kind == "kochava"
        else {}
    )
    api = key_client(acme_management_key)
    typed = api.post(
        "/api/v1/destinations/",
        {"kind": kind, "name": kind, "config": {"base_url": "https://my-host.example", **extra}},
        format="json",
    )
    assert typed.status_code == 400 and "choose it from the list" in json.dumps(typed.json())
    client.force_login(alice)
    assert 'name="cfg_base_url"' not in client.get(f"/destinations/new/{kind}/").content.decode()


# ---- Amplitude projects ----------------------------------------------------------------------------


@pytest.fixture
def amplitude_project(acme, hosts):
    partner, _ = hosts
    auth = Authorization(workspace=acme, provider="amplitude", label="Music app")
    auth.set_secrets({"api_key": "amp-key-123", "secret_key": SECRET})
    auth.save()
    return AmplitudeProject.objects.create(workspace=acme, label="Music app", base_url=partner.url, authorization=auth)


def test_a_project_host_change_needs_its_keys_again_in_api_console_and_admin(
    acme, acme_management_key, client, oscar, amplitude_project, hosts
):
    partner, attacker = hosts
    project = amplitude_project
    api = key_client(acme_management_key)
    url = f"/api/v1/amplitude-projects/{project.pk}/"
    for change in ({"base_url": attacker.url}, {"region": "eu", "base_url": ""}):
        refused = api.patch(url, change, format="json")
        assert refused.status_code == 400 and "authorization" in refused.json()["error"]["fields"], refused.json()
    client.force_login(oscar)
    form = client.post(
        f"/sources/{project.pk}/edit/",
        {"label": project.label, "description": "", "region": "us", "base_url": attacker.url},
    )
    assert form.status_code == 400 and "Enter it again: the region or base URL changed." in form.content.decode()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    admin = client.post(
        f"/admin/sources/amplitudeproject/{project.pk}/change/",
        {
            "workspace": acme.pk,
            "label": project.label,
            "region": "us",
            "base_url": attacker.url,
            "authorization": project.authorization_id,
        },
    )
    assert admin.status_code == 200 and "enter the credentials again" in admin.content.decode()
    project.refresh_from_db()
    assert project.base_url == partner.url and attacker.seen == []


def test_a_project_base_url_override_must_be_one_the_operator_allowed(acme, acme_management_key, amplitude_project):
    api = key_client(acme_management_key)
    body = {"label": "Proxy", "region": "us", "base_url": "https://my-proxy.example"}
    refused = api.post("/api/v1/amplitude-projects/", {**body, "authorization": amplitude_project.authorization_id})
    assert refused.status_code == 400 and "choose the region" in json.dumps(refused.json())
