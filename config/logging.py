"""Log filters that keep secrets out of every log line and error page (docs/invariants.md, invariant 6)."""

import logging
import re

from django.views.debug import SafeExceptionReporterFilter

from config.request_id import request_id_var

REDACTED = "[REDACTED]"

# Inbound and management keys have a recognisable shape (see integrations.api_keys); Fernet tokens
# start with gAAAAA. Header-ish and key=value-ish secrets are caught by name.
_PATTERNS = [
    re.compile(r"\bcc[im]_[A-Za-z0-9_-]{16,}"),
    re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}"),
    re.compile(r"(?i)\b(basic|bearer|api-key)\s+[A-Za-z0-9._~+/=:-]{6,}"),
    re.compile(
        r"(?i)([\"']?(?:authorization|api[_-]?key|x-api-key|password|passcode|passwd|secret(?:_key)?|token)"
        r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
    ),
]


def scrub(text: str) -> str:
    for pattern in _PATTERNS[:3]:
        text = pattern.sub(REDACTED, text)
    return _PATTERNS[3].sub(lambda m: m.group(1) + REDACTED, text)


# Request headers never kept in a request log: these names, any name that looks like a credential
# (a sender's custom auth header: X-Write-Key, X-Auth-Token, X-Webhook-Password, X-Signature, ...)
# and the names an operator adds (INBOUND_LOG_REDACT_HEADERS). What is kept is scrubbed as well.
SECRET_HEADER_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "api-key", "api_key", "x-api-key", "x-write-key"}
)
SECRET_HEADER_NAME_PATTERN = re.compile(r"(?i)auth|key|token|secret|pass|sign|session|cookie|credential|jwt|bearer")


def loggable_headers(headers, extra_names=()) -> dict[str, str]:
    """`headers` without any credential: named ones dropped, the rest scrubbed of key-shaped values."""
    dropped = SECRET_HEADER_NAMES | {name.lower() for name in extra_names}
    return {
        name: scrub(value)
        for name, value in headers.items()
        if name.lower() not in dropped and not SECRET_HEADER_NAME_PATTERN.search(name)
    }


class SecretScrubFilter(logging.Filter):
    """Rewrite the formatted message so no secret reaches a handler, whatever the caller passed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django hides settings named like KEY/TOKEN/PASS; also hide Authorization and api_key headers."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTH|DATABASE_URL|REDIS_URL|PASSCODE", flags=re.IGNORECASE
    )
