"""Cheap checks at the door: the key, the content type, the body size (compressed and decompressed).

Everything here runs before anything is written, so it must stay cheap: one indexed key lookup,
a bounded read and a bounded, streamed gunzip (a 10 KB gzip bomb never becomes 10 GB in memory).
"""

import base64
import binascii
import zlib

from django.conf import settings

from config import safe_json
from integrations.models import ApiKey, ApiKeyScope, authenticate_key


class InboundError(Exception):
    """A refused request: becomes a 4xx JSON error {"error": {"code", "message", "fields"?}}."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields, self.headers = status, code, message, fields, headers or {}


def raw_key_from(request) -> str | None:
    """The key as Basic username (Amplitude's default, Segment's write key), `api_key` header or Bearer."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InboundError(
                401, "invalid_authorization", "The Basic authorization header is not valid base64."
            ) from None
        username, _, _password = decoded.partition(":")  # the password is empty by contract, ignored
        return username.strip() or None
    if scheme in {"bearer", "api-key"} and value:
        return value
    for meta in ("HTTP_API_KEY", "HTTP_X_API_KEY"):
        if request.META.get(meta, "").strip():
            return request.META[meta].strip()
    return None


def authenticate_inbound(request) -> ApiKey:
    raw = raw_key_from(request)
    if not raw:
        raise InboundError(
            401,
            "not_authenticated",
            "Send the inbound API key as the Basic auth username (empty password), an api_key header or a Bearer token.",
            headers={"WWW-Authenticate": 'Basic realm="inbound"'},
        )
    key = authenticate_key(raw)
    if key is None:
        raise InboundError(
            401, "invalid_api_key", "Invalid API key.", headers={"WWW-Authenticate": 'Basic realm="inbound"'}
        )
    if key.revoked_at is not None:
        raise InboundError(401, "revoked_api_key", "This API key has been revoked.")
    if key.is_expired:
        raise InboundError(401, "expired_api_key", "This API key has expired.")
    if key.scope != ApiKeyScope.INBOUND:
        raise InboundError(403, "missing_scope", f"This API key lacks the '{ApiKeyScope.INBOUND}' scope.")
    key.touch()
    return key


# Segment's browser SDK posts JSON as text/plain to avoid a CORS preflight; accept that too.
JSON_TYPES = frozenset({"application/json", "text/plain", "application/x-json"})


def read_body(request) -> bytes:
    """The decoded request body, within the configured size limits, or an InboundError."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise InboundError(
            415,
            "unsupported_content_type",
            f"Content-Type must be application/json, not {content_type or 'missing'!r}.",
            fields={"Content-Type": ["must be application/json"]},
        )
    limit = settings.INBOUND_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise _too_large("body", limit)
    raw = _read_at_most(request, limit + 1)
    if len(raw) > limit:
        raise _too_large("body", limit)
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in {"gzip", "x-gzip"}:
        return gunzip_bounded(raw, settings.INBOUND_MAX_DECOMPRESSED_BYTES)
    if encoding not in {"", "identity"}:
        raise InboundError(
            415, "unsupported_content_encoding", f"Content-Encoding {encoding!r} is not supported (use gzip)."
        )
    return raw


def _read_at_most(request, size: int) -> bytes:
    """The body as sent, at most `size` bytes.

    request.read() goes straight to the WSGI stream (bounded by Content-Length), skipping Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE: our own limits are the ones that apply here. A chunked body has
    no Content-Length, and Django then reads it as empty; a server that ends the stream itself
    (wsgi.input_terminated: gunicorn) lets it be read to its end, here in bounded steps.
    """
    if request.META.get("CONTENT_LENGTH") or not request.META.get("wsgi.input_terminated"):
        return request.read(size)
    stream, parts, total = request.META["wsgi.input"], [], 0
    while total < size:
        chunk = stream.read(min(64 * 1024, size - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def gunzip_bounded(raw: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes: a bomb is refused after producing limit+1 bytes, not all of it."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    parts: list[bytes] = []
    produced = 0
    data = raw
    try:
        while data:
            chunk = decompressor.decompress(data, limit + 1 - produced)
            produced += len(chunk)
            parts.append(chunk)
            if produced > limit:
                raise _too_large("decompressed body", limit)
            data = decompressor.unconsumed_tail
        if not decompressor.eof:
            raise InboundError(400, "invalid_gzip", "The gzip body is truncated.")
    except zlib.error as exc:
        raise InboundError(400, "invalid_gzip", f"The body is not valid gzip: {exc}.") from None
    return b"".join(parts)


def _too_large(what: str, limit: int) -> InboundError:
    return InboundError(
        413,
        "body_too_large",
        f"The {what} is over the limit of {limit} bytes.",
        fields={"body": [f"over {limit} bytes"]},
    )


def parse_json_object(raw: bytes) -> dict:
    """The body as a JSON object. NaN, Infinity and values that cannot be stored (NUL, lone
    surrogates) parse: they are rows for the parsers to set aside, not reasons to refuse the rest."""
    try:
        payload = safe_json.loads(raw)
    except safe_json.TooDeep as exc:
        raise InboundError(
            400, "too_deep", f"The body is not accepted: {exc}.", fields={exc.path: [exc.reason]}
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InboundError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise InboundError(400, "malformed_json", "The body must be a JSON object.")
    return payload
