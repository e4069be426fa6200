"""Personas shared by every test, in the style of healthchecks:

- alice: owner of the Acme workspace;
- bob: her teammate, a marketer in Acme; vera: a viewer in Acme; oscar: ops in Acme;
- charlie: an outsider, owner of the Globex workspace, a member of nothing at Acme.
"""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from integrations.models import ApiKey, Authorization
from tests.network import network_fence, no_connection_left_loopback  # noqa: F401  (no test leaves loopback)
from tests.workers import broker_tasks, workers  # noqa: F401  (real Celery workers, for tests that kill them)
from workspaces.models import Membership, Role, Workspace

PASSWORD = "correct horse battery staple"


def _person(username: str, workspace: Workspace, role: str, **extra):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD, **extra)
    Membership.objects.create(user=user, workspace=workspace, role=role)
    return user


@pytest.fixture
def acme(db):
    return Workspace.objects.create(name="Acme", slug="acme", timezone="America/New_York")


@pytest.fixture
def globex(db):
    return Workspace.objects.create(name="Globex", slug="globex", timezone="Europe/Berlin")


@pytest.fixture
def alice(acme):
    return _person("alice", acme, Role.OWNER)


@pytest.fixture
def bob(acme):
    return _person("bob", acme, Role.MARKETER)


@pytest.fixture
def vera(acme):
    return _person("vera", acme, Role.VIEWER)


@pytest.fixture
def oscar(acme):
    return _person("oscar", acme, Role.OPS, is_staff=True)


@pytest.fixture
def charlie(globex):
    return _person("charlie", globex, Role.OWNER)


@pytest.fixture
def acme_clevertap(acme):
    auth = Authorization(workspace=acme, provider="clevertap", label="CleverTap EU", fields={"account_id": "ACME-1"})
    auth.set_secrets({"passcode": "acme-passcode-s3cret"})
    auth.save()
    return auth


@pytest.fixture
def acme_management_key(acme):
    """An `admin` key without an owner (as manage.py create_api_key makes): acts as ops."""
    return ApiKey.issue(acme, scope="management", name="scripts", access="admin")[1]


@pytest.fixture
def acme_inbound_key(acme):
    return ApiKey.issue(acme, scope="inbound", name="amplitude")[1]


@pytest.fixture
def globex_management_key(globex):
    return ApiKey.issue(globex, scope="management", name="globex scripts", access="admin")[1]


@pytest.fixture
def api():
    return APIClient()


def key_client(raw_key: str, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {raw_key}")
    return client


def test_database_url() -> str:
    """DATABASE_URL of the test database, for child processes (workers killed on purpose).

    Built from the environment's URL so every form keeps working: TCP, or the embedded server's
    unix socket (`?host=/path`), with the database name swapped for pytest-django's test database.
    """
    import os
    from urllib.parse import urlsplit, urlunsplit

    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


test_database_url.__test__ = False  # a helper, not a test
