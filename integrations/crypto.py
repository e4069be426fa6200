"""Secrets at rest: MultiFernet over FIELD_ENCRYPTION_KEYS (newest first).

Encrypting always uses the newest key; decrypting tries each key, so a new key can be prepended,
every row re-encrypted (`manage.py rotate_encryption_keys`) and only then the old key removed.
"""

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class UndecryptableSecret(Exception):
    """No configured key opens this value: a key was removed before rotation finished."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_json(value: dict) -> str:
    return fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise UndecryptableSecret("No key in FIELD_ENCRYPTION_KEYS decrypts this secret.") from None


def rotate_token(token: str) -> str:
    """Re-encrypt under the newest key (MultiFernet.rotate keeps the original timestamp)."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret("No key in FIELD_ENCRYPTION_KEYS decrypts this secret.") from None
