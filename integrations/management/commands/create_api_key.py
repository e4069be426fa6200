from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from integrations.models import ApiKey, ApiKeyAccess, ApiKeyScope, IdentityKind
from workspaces.models import Workspace


class Command(BaseCommand):
    help = "Create an API key and print it alone on one line of stdout (shown once; only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workspace", required=True, help="Workspace slug.")
        parser.add_argument("--scope", required=True, choices=[choice.value for choice in ApiKeyScope])
        parser.add_argument("--name", default="", help="A label for the key (default: '<scope> key').")
        parser.add_argument(
            "--access",
            default=ApiKeyAccess.READ,
            choices=[choice.value for choice in ApiKeyAccess],
            help="Management keys: read (default), write or admin (see docs/api.md).",
        )
        parser.add_argument("--expires-in-days", type=int, default=None, help="Optional: the key expires then.")
        parser.add_argument(
            "--identity-kind",
            default=IdentityKind.USER_ID,
            choices=[choice.value for choice in IdentityKind],
            help="Inbound keys: what kind of identifier the pushed ids are (default user_id).",
        )
        parser.add_argument("--identity-property", default="", help="With --identity-kind property: its name.")

    def handle(
        self, *args, workspace, scope, name, access, expires_in_days, identity_kind, identity_property, **opts
    ) -> None:
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        ws = Workspace.objects.filter(slug=workspace).first()
        if ws is None:
            raise CommandError(f"No workspace with slug {workspace!r}.")
        if identity_kind == IdentityKind.PROPERTY and not identity_property:
            raise CommandError("--identity-kind property needs --identity-property NAME.")
        key, raw = ApiKey.issue(
            ws,
            scope=scope,
            name=name or f"{scope} key",
            access=access,
            expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
            identity_kind=identity_kind,
            identity_property=identity_property,
        )
        self.stderr.write(f"Created {scope} key {key.prefix}… for workspace {ws.slug}.")
        self.stdout.write(raw)
