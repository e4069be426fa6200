"""Secrets typed into a form whose connection test failed, kept for its "Save anyway".

A secret is never sent back to a browser, not even into the form it was typed in. So when the test
before save fails, the typed secrets are kept server-side, encrypted like an authorization's
(integrations.crypto), in the person's own session under a random token; the re-shown form carries
only the token, and "Save anyway" (or a new try with the secret inputs left blank) uses them.
"""

from __future__ import annotations

import secrets

from integrations.crypto import decrypt_json, encrypt_json

KEY = "pending_credentials"
KEPT = 5  # forms a person may have waiting at once; older ones are dropped


def keep(request, values: dict) -> str:
    """Keep the non-blank `values` for this session; returns the token the form carries."""
    token = secrets.token_urlsafe(16)
    pending = dict(request.session.get(KEY, {}))
    pending[token] = encrypt_json({name: value for name, value in values.items() if value})
    request.session[KEY] = dict(list(pending.items())[-KEPT:])
    return token


def take(request, token: str) -> dict:
    """The values kept under `token` ({} for an unknown one); they stay until `drop`."""
    ciphertext = request.session.get(KEY, {}).get(token or "")
    return decrypt_json(ciphertext) if ciphertext else {}


def drop(request, token: str) -> None:
    pending = dict(request.session.get(KEY, {}))
    if pending.pop(token or "", None) is not None:
        request.session[KEY] = pending
