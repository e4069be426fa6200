"""Create (or refresh) the demo workspace and its people, and print the login.

Idempotent: the run command calls it on every start. The password is generated once and kept in
.data/demo-login.json (git-ignored) unless DEMO_PASSWORD is set.
"""

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from workspaces.models import Membership, Role, Workspace

DEMO_PEOPLE = [
    ("admin", Role.OWNER, True),
    ("ops", Role.OPS, False),
    ("marketer", Role.MARKETER, False),
    ("viewer", Role.VIEWER, False),
]


def demo_state_path() -> Path:
    return Path(settings.BASE_DIR) / ".data" / "demo-login.json"


def load_demo_state() -> dict:
    path = demo_state_path()
    return json.loads(path.read_text()) if path.exists() else {}


def save_demo_state(state: dict) -> None:
    path = demo_state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


class Command(BaseCommand):
    help = "Create the demo workspace, an admin and one user per role, and print the login."

    def handle(self, *args, **options):
        state = load_demo_state()
        password = os.environ.get("DEMO_PASSWORD") or state.get("password") or secrets.token_urlsafe(9)
        state["password"] = password
        workspace, _ = Workspace.objects.get_or_create(
            slug="demo", defaults={"name": "Demo workspace", "timezone": "Europe/Berlin"}
        )
        User = get_user_model()
        for username, role, is_admin in DEMO_PEOPLE:
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@demo.local"})
            user.is_staff = user.is_superuser = is_admin
            user.set_password(password)
            user.save()
            Membership.objects.update_or_create(workspace=workspace, user=user, defaults={"role": role})
        from workspaces.demo import populate_demo

        populate_demo(workspace, state, self.stdout)
        save_demo_state(state)
        self.stdout.write(self.style.SUCCESS("Demo workspace ready."))
        self.stdout.write(f"  Login: admin / {password}   (also ops, marketer, viewer with the same password)")
