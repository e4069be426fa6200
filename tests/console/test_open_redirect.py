"""`next` never sends anyone to another site: the workspace switcher and the sign-in form."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD

OUTSIDE = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    "https://testserver.evil.example/",
    " //evil.example",
]


@pytest.mark.parametrize("target", OUTSIDE)
def test_workspace_switch_ignores_a_next_outside_the_site(client, alice, acme, target):
    client.force_login(alice)
    response = client.post("/workspace/switch/", {"workspace": "acme", "next": target})
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize("target", ["/segments/", "/people/?q=a", "http://testserver/syncs/"])
def test_workspace_switch_keeps_a_next_on_this_site(client, alice, acme, target):
    client.force_login(alice)
    response = client.post("/workspace/switch/", {"workspace": "acme", "next": target})
    assert response["Location"] == target


@pytest.mark.parametrize("target", OUTSIDE)
def test_sign_in_ignores_a_next_outside_the_site(alice, target):
    response = Client().post("/login/", {"username": "alice", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == "/"
