"""Sign-ins are throttled per account and per address (django-axes) on the console and the admin,
and ops unlock them in the admin."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

from config.client_ip import client_ip
from tests.conftest import PASSWORD


def sign_in(client: Client, username: str, password: str, path: str = "/login/", address: str = "127.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_thirty_wrong_passwords_then_the_right_one_is_refused(alice, settings):
    client = Client()
    for _ in range(30):
        assert sign_in(client, "alice", "wrong").status_code in (200, 429)
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "_auth_user_id" not in client.session


def test_an_account_is_locked_whatever_address_the_guesses_come_from(alice, bob, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "alice", "wrong", address=f"203.0.113.{n + 1}")
    assert sign_in(Client(), "alice", PASSWORD, address="198.51.100.7").status_code == 429
    assert sign_in(Client(), "bob", PASSWORD, address="198.51.100.7").status_code == 302, "only alice is locked"


def test_an_address_is_locked_whatever_accounts_it_tries(alice, bob, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), f"someone{n}", "wrong", address="203.0.113.9")
    assert sign_in(Client(), "alice", PASSWORD, address="203.0.113.9").status_code == 429
    assert sign_in(Client(), "alice", PASSWORD, address="198.51.100.7").status_code == 302, "only the address is locked"


def test_the_admin_sign_in_is_throttled_too(django_user_model, settings):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "root", "wrong", path="/admin/login/")
    response = sign_in(client, "root", PASSWORD, path="/admin/login/")
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_a_success_below_the_limit_signs_in(alice, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_ops_unlock_an_account_in_the_admin(alice, oscar, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "alice", "wrong", address="203.0.113.5")
    assert sign_in(Client(), "alice", PASSWORD, address="198.51.100.7").status_code == 429
    admin = Client()
    admin.force_login(oscar)
    oscar.is_superuser = True  # ops in the admin: a superuser here; staff need the axes delete permission
    oscar.save()
    listed = admin.get("/admin/axes/accessattempt/")
    assert listed.status_code == 200 and "alice" in listed.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    admin.post("/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": ids})
    assert not AccessAttempt.objects.exists()
    assert sign_in(Client(), "alice", PASSWORD, address="198.51.100.7").status_code == 302


def test_ops_unlock_from_the_user_page_action(alice, django_user_model, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "alice", "wrong", address="203.0.113.5")
    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    admin.post("/admin/auth/user/", {"action": "unlock_sign_in", "_selected_action": [str(alice.pk)]})
    assert sign_in(Client(), "alice", PASSWORD, address="198.51.100.7").status_code == 302


class _Request:
    def __init__(self, remote: str, forwarded: str = ""):
        self.META = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded}


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.2"),  # no proxy: the header is the client's own words
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a forged left part is ignored
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        (2, "198.51.100.1", "10.0.0.2"),  # shorter than the proxies: it bypassed one
    ],
)
def test_client_address_behind_trusted_proxies(settings, count, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    assert client_ip(_Request("10.0.0.2", forwarded)) == expected


def test_behind_a_proxy_each_client_counts_on_its_own(alice, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            "/login/",
            {"username": "nobody", "password": "x"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="203.0.113.66",
        )
    ok = Client().post(
        "/login/",
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.3",
    )
    assert ok.status_code == 302, "another client behind the same proxy is not locked"
