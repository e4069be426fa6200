from integrations.models import ApiKey, Authorization


def test_admin_authorization_pages_mask_secrets(client, oscar, acme_clevertap, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    for url in ("/admin/integrations/authorization/", f"/admin/integrations/authorization/{acme_clevertap.pk}/change/"):
        html = client.get(url).content.decode()
        assert "acme-passcode-s3cret" not in html
        assert acme_clevertap.secrets_ciphertext not in html
        assert "Acme" in html  # the workspace is shown
    assert "passcode: ••••••••" in client.get("/admin/integrations/authorization/").content.decode()


def test_admin_change_with_blank_secret_keeps_it(client, acme_clevertap, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post(
        f"/admin/integrations/authorization/{acme_clevertap.pk}/change/",
        {
            "workspace": acme_clevertap.workspace_id,
            "provider": "clevertap",
            "label": "Renamed",
            "description": "",
            "fields": '{"account_id": "ACME-1"}',
        },
    )
    assert response.status_code == 302, response.content[:2000]
    acme_clevertap.refresh_from_db()
    assert acme_clevertap.label == "Renamed" and acme_clevertap.secrets == {"passcode": "acme-passcode-s3cret"}


def test_admin_rejects_a_secret_the_provider_does_not_have(client, acme, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    html = client.post(
        "/admin/integrations/authorization/add/",
        {
            "workspace": acme.pk,
            "provider": "clevertap",
            "label": "CT",
            "fields": '{"account_id": "A"}',
            "secret_passcode": "p",
            "secret_secret_key": "nope",
        },
    ).content.decode()
    assert "CleverTap has no secret named secret_key" in html
    assert not Authorization.objects.exists()


def test_admin_creates_key_and_shows_it_once(client, acme, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post(
        "/admin/integrations/apikey/add/",
        {"workspace": acme.pk, "name": "ops key", "scope": "management", "identity_kind": "user_id"},
    )
    key = ApiKey.objects.get(name="ops key")
    html = response.content.decode()
    assert 'id="raw-key"' in html and key.prefix in html
    assert key.prefix in client.get("/admin/integrations/apikey/").content.decode()


def test_admin_lists_have_search_and_filters(client, acme_clevertap, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    assert client.get("/admin/integrations/authorization/?q=CleverTap").status_code == 200
    assert client.get("/admin/integrations/apikey/?scope__exact=inbound").status_code == 200
    assert client.get("/admin/workspaces/membership/?role__exact=owner").status_code == 200


def test_admin_user_page_shows_workspace_memberships(client, alice, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    html = client.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    assert "Acme" in html and "Owner" in html
