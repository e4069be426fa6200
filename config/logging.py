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
        r"(?i)([\"']?(?:authorization|api[_-]?key|x-api-key|password|passcode|passwd|secret(?:_key)?|token|"
        r"x-clevertap-passcode)[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
    ),
]


def scrub(text: str) -> str:
    for pattern in _PATTERNS[:3]:
        text = pattern.sub(REDACTED, text)
    return _PATTERNS[3].sub(lambda m: m.group(1) + REDACTED, text)


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
