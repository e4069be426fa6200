from django.core.management.base import BaseCommand, CommandError

from integrations.models import ApiKey, ApiKeyScope, IdentityKind
from workspaces.models import Workspace


class Command(BaseCommand):
    help = "Create an API key and print it alone on one line of stdout (shown once; only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="Workspace slug.")
        parser.add_argument("--scope", required=True, choices=[choice.value for choice in ApiKeyScope])
        parser.add_argument("--name", default="", help="A label for the key (default: '<scope> key').")
        parser.add_argument(
            "--identity-kind",
            default=IdentityKind.USER_ID,
            choices=[choice.value for choice in IdentityKind],
            help="Inbound keys: what kind of identifier the pushed ids are (default user_id).",
        )
        parser.add_argument("--identity-property", default="", help="With --identity-kind property: its name.")

    def handle(self, *args, workspace, scope, name, identity_kind, identity_property, **options):
        ws = Workspace.objects.filter(slug=workspace).first()
        if ws is None:
            raise CommandError(f"No workspace with slug {workspace!r}.")
        if identity_kind == IdentityKind.PROPERTY and not identity_property:
            raise CommandError("--identity-kind property needs --identity-property NAME.")
        key, raw = ApiKey.issue(
            ws,
            scope=scope,
            name=name or f"{scope} key",
            identity_kind=identity_kind,
            identity_property=identity_property,
        )
        self.stderr.write(f"Created {scope} key {key.prefix}… for workspace {ws.slug}.")
        self.stdout.write(raw)
