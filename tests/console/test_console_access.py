from integrations.models import ApiKey, Authorization
from tests.conftest import PASSWORD


def test_login_page_and_sign_in(client, alice):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_dashboard_empty_state_says_what_to_do_next(client, alice):
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "Get started: 0 of 5 done" in html
    assert '<a href="/sources/">Connect Amplitude</a>' in html


def test_dashboard_for_viewer_says_credentials_are_for_owners_and_ops(client, vera):
    client.force_login(vera)
    html = client.get("/").content.decode()
    assert "which owners and ops handle" in html


def test_workspace_switcher_changes_the_current_workspace(client, alice, globex):
    from workspaces.models import Membership

    Membership.objects.create(user=alice, workspace=globex, role="viewer")
    client.force_login(alice)
    assert "<h1>Acme</h1>" in client.get("/").content.decode()
    client.post("/workspace/switch/", {"workspace": "globex"})
    assert "<h1>Globex</h1>" in client.get("/").content.decode()


def test_switching_to_a_foreign_workspace_is_404(client, alice, globex):
    client.force_login(alice)
    assert client.post("/workspace/switch/", {"workspace": "globex"}).status_code == 404


def test_marketer_reads_setup_pages_and_is_refused_an_authorization(client, bob, acme_clevertap):
    client.force_login(bob)
    for url in ("/settings/authorizations/", "/settings/api-keys/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"Only owners and ops handle credentials" in response.content
        assert b"acme-passcode-s3cret" not in response.content and b"ACME-1" not in response.content
    response = client.get(f"/settings/authorizations/{acme_clevertap.pk}/")
    assert response.status_code == 403 and b"Only owners and ops" in response.content


def test_viewer_reads_setup_pages_and_is_refused_their_forms(client, vera):
    client.force_login(vera)
    assert client.get("/settings/api-keys/").status_code == 200
    assert client.post("/settings/api-keys/", {"name": "x", "scope": "inbound"}).status_code == 403


def test_owner_sees_masked_secrets_in_console_html(client, alice, acme_clevertap):
    client.force_login(alice)
    for url in ("/settings/authorizations/", f"/settings/authorizations/{acme_clevertap.pk}/"):
        html = client.get(url).content.decode()
        assert "acme-passcode-s3cret" not in html
        assert "CleverTap EU" in html
    assert (
        "saved — leave blank to keep" in client.get(f"/settings/authorizations/{acme_clevertap.pk}/").content.decode()
    )


def test_owner_adds_authorization_in_console_and_edit_keeps_secret(client, alice, acme):
    client.force_login(alice)
    response = client.post(
        "/settings/authorizations/",
        {
            "provider": "amplitude",
            "label": "Amp",
            "description": "",
            "secret_api_key": "AK1",
            "secret_secret_key": "SK1",
        },
    )
    assert response.status_code == 302
    auth = Authorization.objects.get(workspace=acme, label="Amp")
    client.post(f"/settings/authorizations/{auth.pk}/", {"provider": "amplitude", "label": "Amp 2", "description": "d"})
    auth.refresh_from_db()
    assert auth.label == "Amp 2" and auth.secrets == {"api_key": "AK1", "secret_key": "SK1"}


def test_missing_secret_is_reported_next_to_the_field(client, alice):
    client.force_login(alice)
    html = client.post(
        "/settings/authorizations/", {"provider": "amplitude", "label": "Amp", "secret_api_key": "AK1"}
    ).content.decode()
    assert "This field is required." in html


def test_outsider_cannot_open_acme_authorization(client, charlie, acme_clevertap):
    client.force_login(charlie)
    assert client.get(f"/settings/authorizations/{acme_clevertap.pk}/").status_code == 404


def test_new_key_is_shown_once_in_console(client, alice, acme):
    client.force_login(alice)
    response = client.post("/settings/api-keys/", {"name": "amp", "scope": "inbound", "identity_kind": "user_id"})
    assert response.status_code == 302
    html = client.get("/settings/api-keys/").content.decode()
    key = ApiKey.objects.get(workspace=acme, name="amp")
    assert f'<code id="new-key">{key.prefix}' in html
    again = client.get("/settings/api-keys/").content.decode()
    assert 'id="new-key"' not in again and f"{key.prefix}…" in again


def test_revoke_key_in_console(client, alice, acme):
    key, _ = ApiKey.issue(acme, scope="inbound", name="x")
    client.force_login(alice)
    client.post(f"/settings/api-keys/{key.pk}/revoke/")
    key.refresh_from_db()
    assert key.revoked_at is not None
