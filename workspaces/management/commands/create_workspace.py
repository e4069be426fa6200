"""Create a workspace and its first owner: `manage.py create_workspace NAME --owner USERNAME`.

Without --password-stdin a password is generated and printed alone on one line of stdout, once
(only its hash is stored); the rest goes to stderr, so scripts can capture it. Nothing is created
unless everything is valid: duplicates, bad time zones, emails or passwords stop it with a message.
"""

import secrets
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from workspaces.models import Membership, Role, Workspace, validate_timezone


def _checked(value: str, validator, option: str) -> str:
    try:
        validator(value)
    except ValidationError as error:
        raise CommandError(f"{option}: {' '.join(error.messages)}") from None
    return value


class Command(BaseCommand):
    help = "Create a workspace and its first owner; prints the owner's generated password once on stdout."
    stealth_options = ("stdin",)  # call_command(..., stdin=...) in tests; sys.stdin otherwise

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The workspace's name, as people see it.")
        parser.add_argument("--owner", required=True, help="Username of the new owner (a new account).")
        parser.add_argument("--email", default="", help="The owner's email (health notices go there).")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone of the workspace (default UTC).")
        parser.add_argument("--slug", default="", help="The workspace's short name (default: from NAME).")
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read the owner's password from the first line of stdin."
        )

    def handle(self, *args, name, owner, email, timezone, slug, password_stdin, **options) -> None:
        name = " ".join(name.split())
        if not name or not name.isprintable() or len(name) > Workspace._meta.get_field("name").max_length:
            raise CommandError("NAME: give a printable name of at most 120 characters.")
        slug = slug or slugify(name)[:60].strip("-")
        _checked(slug, Workspace._meta.get_field("slug").run_validators, "--slug")
        if not slug:
            raise CommandError(f"NAME {name!r} gives no usable slug: pass --slug (letters, digits, - and _).")
        _checked(timezone, validate_timezone, "--timezone")
        if email:
            _checked(email, validate_email, "--email")
        User = get_user_model()
        _checked(owner, User.username_validator, "--owner")

        if existing := Workspace.objects.filter(slug=slug).first():
            raise CommandError(f"A workspace with slug {slug!r} already exists ({existing.name!r}); nothing created.")
        if existing := Workspace.objects.filter(name__iexact=name).first():
            raise CommandError(f"A workspace named {existing.name!r} already exists (slug {existing.slug!r}).")
        if User.objects.filter(username__iexact=owner).exists():
            raise CommandError(
                f"A user {owner!r} already exists; nothing created. Choose a new username, or create the "
                "workspace with another owner and add this user to it in the admin."
            )

        generated = not password_stdin
        if generated:
            password = secrets.token_urlsafe(18)
        else:
            password = (options.get("stdin") or sys.stdin).readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: the first line of stdin is empty.")
        candidate = User(username=owner, email=email)
        _checked(password, lambda value: validate_password(value, user=candidate), "password")

        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(name=name, slug=slug, timezone=timezone)
                user = User.objects.create_user(owner, email, password)
                Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
        except IntegrityError:  # created by someone else between the checks and now
            raise CommandError(f"Workspace {slug!r} or user {owner!r} was just created by someone else.") from None
        self.stderr.write(f"Created workspace {name!r} (slug {slug}, {timezone}) with owner {owner}.")
        if generated:
            self.stderr.write(f"The password of {owner}, shown only this once:")
            self.stdout.write(password)
