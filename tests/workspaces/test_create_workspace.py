"""manage.py create_workspace: a workspace and its first owner, for ops without the admin."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from tests.conftest import test_database_url
from workspaces.models import Membership, Role, Workspace

ROOT = Path(__file__).resolve().parents[2]


def signs_in(client: Client, username: str, password: str) -> bool:
    """Signs in through the login page (as a person would, past the sign-in throttle)."""
    response = client.post("/login/", {"username": username, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


def create(*args, stdin: str | None = None, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        options.update(password_stdin=True, stdin=io.StringIO(stdin))
    call_command("create_workspace", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def nothing_created(before: int = 0) -> bool:
    return Workspace.objects.count() == before and not get_user_model().objects.exists()


def test_creates_the_workspace_and_its_owner_and_prints_the_password_alone(db):
    out, err = create("Acme Music", owner="alice", email="alice@example.com", timezone="Europe/Berlin")
    password = out.strip()
    assert out == password + "\n" and len(password) >= 20
    workspace = Workspace.objects.get()
    assert (workspace.name, workspace.slug, workspace.timezone) == ("Acme Music", "acme-music", "Europe/Berlin")
    membership = Membership.objects.get()
    assert (membership.workspace, membership.user.username, membership.role) == (workspace, "alice", Role.OWNER)
    assert membership.user.email == "alice@example.com" and not membership.user.is_staff
    assert password not in err and "shown only this once" in err
    client = Client()
    assert signs_in(client, "alice", password)
    assert client.get("/").status_code == 200


def test_the_password_can_come_from_stdin_and_is_checked(db):
    out, _ = create("Globex", owner="charlie", slug="globex-eu", stdin="a long and unusual phrase 42\n")
    assert out == ""  # nothing to show: the operator chose it
    assert signs_in(Client(), "charlie", "a long and unusual phrase 42")
    assert Workspace.objects.get().slug == "globex-eu"
    with pytest.raises(CommandError, match="password: .*too common"):
        create("Initech", owner="peter", stdin="password\n")
    with pytest.raises(CommandError, match="first line of stdin is empty"):
        create("Initech", owner="peter", stdin="")
    assert not Workspace.objects.filter(name="Initech").exists()


def test_duplicates_are_refused_with_a_clear_message_and_change_nothing(db):
    create("Acme", owner="alice")
    with pytest.raises(CommandError, match="slug 'acme' already exists"):
        create("Acme", owner="bob")
    with pytest.raises(CommandError, match="named 'Acme' already exists"):
        create("ACME", owner="bob", slug="acme-2")
    with pytest.raises(CommandError, match="user 'Alice' already exists"):
        create("Globex", owner="Alice")
    assert Workspace.objects.count() == 1 and get_user_model().objects.count() == 1


@pytest.mark.parametrize(
    ("args", "options", "says"),
    [
        (["Acme"], {"owner": "alice", "timezone": "Mars/Olympus"}, "--timezone: 'Mars/Olympus' is not an IANA"),
        (["Acme"], {"owner": "alice", "email": "not-an-email"}, "--email: Enter a valid email"),
        (["Acme"], {"owner": "al ice"}, "--owner: Enter a valid username"),
        (["***"], {"owner": "alice"}, "gives no usable slug: pass --slug"),
        (["Acme"], {"owner": "alice", "slug": "no spaces"}, "--slug: Enter a valid"),
        (["Ac\x00me"], {"owner": "alice"}, "NAME: give a printable name"),
        (["x" * 121], {"owner": "alice"}, "at most 120 characters"),
    ],
)
def test_bad_input_is_refused_naming_the_option(db, args, options, says):
    with pytest.raises(CommandError, match=says.replace("(", r"\(")):
        create(*args, **options)
    assert nothing_created()


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_the_password_is_the_only_line_on_stdout_and_errors_exit_nonzero():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": test_database_url()}

    def manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "create_workspace", *args],
            check=False,
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = manage("Acme", "--owner", "alice")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and signs_in(Client(), "alice", done.stdout.strip())
    again = manage("Acme", "--owner", "bob")
    assert again.returncode != 0 and "already exists" in again.stderr and again.stdout == ""
    piped = manage("Globex", "--owner", "charlie", "--password-stdin", stdin="another fine phrase 7\n")
    assert piped.returncode == 0 and piped.stdout == ""
    assert signs_in(Client(), "charlie", "another fine phrase 7")
