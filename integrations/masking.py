"""Masking credentials out of anything a person may read: in the forms a partner could echo them.

A partner that echoes what it received (an error quoting the request, a debug field) returns a
credential as it travelled, not only as it was typed: the base64 token of a Basic header, a value
URL-encoded into a query or form, a value JSON-escaped inside an error string. `Masker` is built
from the raw credential values and the credential header values a connector sends, and replaces
each of them in every one of those forms. Connectors mask call logs, errors, test results and dry
runs through it (integrations.connectors.base); the Amplitude client masks its errors the same way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "••••••••"
MIN_LENGTH = 4  # shorter values are too likely to occur by chance (and too weak to be secrets)
_SCHEMES = ("basic ", "bearer ", "token ")


def encoded_forms(value: str) -> set[str]:
    """`value` as it may come back: raw, base64 (standard and URL-safe, padded or not), URL-encoded
    (path and form style) and JSON-escaped (ASCII-escaped or not)."""
    forms = {value}
    raw = value.encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        token = encode(raw).decode()
        forms |= {token, token.rstrip("=")}
    forms |= {quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Masker:
    """Replaces every form of the given credential values with MASK (longest first, so a Basic
    header's token is masked whole rather than around a secret inside it)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            value = str(value or "")
            if len(value) < MIN_LENGTH:
                continue
            forms |= encoded_forms(value)
            # A header value "Basic <token>" / "Bearer <token>": the token alone travels too.
            lowered = value.lower()
            for scheme in _SCHEMES:
                if lowered.startswith(scheme) and len(value) - len(scheme) >= MIN_LENGTH:
                    forms |= encoded_forms(value[len(scheme) :])
                    if scheme == "basic ":  # and the decoded user:password it carries
                        try:
                            decoded = base64.b64decode(value[len(scheme) :], validate=True).decode()
                        except ValueError:
                            decoded = ""
                        if len(decoded) >= MIN_LENGTH:
                            forms |= encoded_forms(decoded)
        self.forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.forms)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def deep(self, value) -> Any:
        """A JSON-like structure with every string masked (dry-run bodies, URLs)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(item) for item in value]
        return value
