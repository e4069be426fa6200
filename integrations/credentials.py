"""What an authorization holds, as its provider describes it: which fields are secret, which optional.

A connector class declares its `credential_fields` (the Amplitude source declares its own in
integrations.sources.amplitude); the registry (integrations.connectors.registry.credentials) pairs
them with the partner's name. The console's forms, the management API and the admin are built from
this description, so none of them names a partner or a field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CredentialField:
    name: str
    # Secret: encrypted at rest, write-only in every form and API, masked wherever it could be echoed.
    secret: bool = True
    # Optional: an authorization may leave it blank (e.g. a key the partner asks for only when enabled).
    optional: bool = False
    help: str = ""

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Credentials:
    """One provider's authorization: the partner's name and the fields it holds."""

    label: str
    fields: tuple[CredentialField, ...]

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.secret)

    @property
    def plain_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.secret)

    @property
    def help(self) -> dict[str, str]:
        return {f.name: f.help for f in self.fields if f.help}

    @property
    def required(self) -> bool:
        """False when every field is optional: a destination may then go without an authorization."""
        return any(not f.optional for f in self.fields)

    def field(self, name: str) -> CredentialField:
        return next(f for f in self.fields if f.name == name)
