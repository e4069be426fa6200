"""Create (or refresh) the demo workspace, its people and login, then what it shows, part by part.

Idempotent: the run command calls it (manage.py seed_demo) on every start. The password is
generated once and kept in .data/demo-login.json (git-ignored) unless DEMO_PASSWORD is set.

Order matters: sources import cohorts from the sandbox Amplitude first, then destinations and
syncs are set up on those segments, then partner extras, then a few pushes arrive as Amplitude
would send them. Each part skips itself, saying so, when its sandbox is not running.
"""

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from demo import campaigns, delivery, erasure, first_run, inbound, partners, retention, sources
from integrations.models import ApiKey, ApiKeyAccess, ApiKeyScope
from workspaces.models import Membership, Role, Workspace

DEMO_PEOPLE = [
    ("admin", Role.OWNER, True),
    ("ops", Role.OPS, False),
    ("marketer", Role.MARKETER, False),
    ("viewer", Role.VIEWER, False),
]

PARTS = (
    sources.populate_demo,
    delivery.populate_demo,
    partners.populate_demo,
    inbound.populate_demo,
    campaigns.populate_demo,
    erasure.populate_demo,
    retention.populate_demo,
    first_run.populate_demo,
)


def demo_state_path() -> Path:
    """DEMO_STATE_FILE, or .data/demo-login.json (the smoke keeps its own, next to its own database)."""
    return Path(os.environ.get("DEMO_STATE_FILE") or Path(settings.BASE_DIR) / ".data" / "demo-login.json")


def load_demo_state() -> dict:
    path = demo_state_path()
    return json.loads(path.read_text()) if path.exists() else {}


def save_demo_state(state: dict) -> None:
    path = demo_state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def seed_demo(out) -> str:
    """Seed everything, writing progress lines to `out`; returns the demo password."""
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
    populate_demo(workspace, state, out)
    save_demo_state(state)
    return password


def populate_demo(workspace, state: dict, out) -> None:
    # An inbound key for Amplitude's cohort sync; the raw value is kept in the git-ignored state
    # file so the demo can print it on every start (a real key is shown once only).
    key_prefix = state.get("inbound_key_prefix")
    if not key_prefix or not ApiKey.objects.filter(prefix=key_prefix, revoked_at__isnull=True).exists():
        key, raw = ApiKey.issue(workspace, scope=ApiKeyScope.INBOUND, name="Amplitude cohort sync (demo)")
        state["inbound_key_prefix"], state["inbound_key"] = key.prefix, raw
    out.write(f"  Demo inbound API key: {state['inbound_key']}")
    # A read-only management key that expires, made by the demo's owner: the API keys page shows
    # access levels, expiry and the owner a key follows (its value is never needed, so not kept).
    owner = workspace.memberships.filter(role=Role.OWNER).select_related("user").first()
    if not ApiKey.objects.filter(workspace=workspace, name="Reporting script (demo)").exists():
        ApiKey.issue(
            workspace,
            scope=ApiKeyScope.MANAGEMENT,
            name="Reporting script (demo)",
            access=ApiKeyAccess.READ,
            expires_at=timezone.now() + timedelta(days=90),
            created_by=owner.user if owner else None,
        )
    for part in PARTS:
        part(workspace, state, out)
