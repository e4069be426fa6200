"""The inbound endpoints. Each request: key → body limits → JSON → cheap validation → one INSERT of
the raw batch (deduplicated) → 2xx → apply task queued after commit. Every request, accepted or
refused, lands in the per-key inbound log (without any credential header: config.logging.loggable_headers)."""

import hashlib
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from audiences.identity import MAX_IDENTITY_LENGTH, blocked_values, clean_identity
from audiences.models import Segment, SegmentType
from config.logging import loggable_headers
from config.safe_json import storable
from integrations.api_errors import json_error
from integrations.inbound.apply import V1_DEFAULT_TYPES, backlog, ensure_segment, unusable_people
from integrations.inbound.http import InboundError, authenticate_inbound, parse_json_object, raw_key_from, read_body
from integrations.inbound.models import Endpoint, InboundBatch, InboundRequest
from integrations.inbound.parsers import amplitude_lists, cohort_webhook, identify, segment
from integrations.inbound.tasks import enqueue
from integrations.models import ApiKey, IdentityKind

logger = logging.getLogger(__name__)

PREVIEW_CHARS = 4000
INVALID_ROWS_SHOWN = 100


class Exchange:
    """What the log needs to know about one request while it is handled."""

    def __init__(self, request, endpoint: str):
        self.request, self.endpoint = request, endpoint
        self.started = time.monotonic()
        self.key: ApiKey | None = None
        self.body = b""
        self.batch_id: int | None = None
        self.duplicate = False


def identity_kind_of(key: ApiKey) -> str:
    if key.identity_kind == IdentityKind.PROPERTY and key.identity_property:
        return f"property:{key.identity_property}"
    return key.identity_kind


def _check_backlog(key: ApiKey) -> None:
    limit = settings.INBOUND_BACKLOG_LIMIT
    if backlog(key.workspace_id, cap=limit + 1) > limit:
        retry_after = settings.INBOUND_RETRY_AFTER_SECONDS
        raise InboundError(
            429,
            "backlog_full",
            f"More than {limit} pushes are waiting to be applied; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


def accept_batch(
    exchange: Exchange,
    endpoint: str,
    *,
    dedupe_key: str,
    segment_id: int | None = None,
    item_count: int = 0,
    invalid: list | None = None,
    other_calls: dict | None = None,
) -> tuple[InboundBatch, bool]:
    """Commit the raw batch (or find the one a replay already committed). Returns (batch, duplicate)."""
    key = exchange.key
    invalid = invalid or []
    batch = InboundBatch(
        workspace_id=key.workspace_id,
        api_key=key,
        endpoint=endpoint,
        segment_id=segment_id,
        identity_kind=identity_kind_of(key),
        body=exchange.body,
        dedupe_key=dedupe_key,
        item_count=item_count,
        # The refused value is kept to show with its reason, made safe for jsonb (NUL, NaN, …).
        invalid=[[position, storable(raw), reason] for position, raw, reason in invalid],
        invalid_count=len(invalid),
        other_calls=dict(other_calls or {}),
        received_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            batch.save(force_insert=True)
            transaction.on_commit(lambda: enqueue(key.workspace_id, segment_id))
    except IntegrityError:
        # A replay (Amplitude retries up to 8 times): the unique (workspace, dedupe_key) index said so.
        existing = InboundBatch.objects.filter(workspace_id=key.workspace_id, dedupe_key=dedupe_key).first()
        if existing is None:
            raise
        return existing, True
    return batch, False


# A retry and a re-entry can carry identical bodies (Amplitude's have no timestamp or message id):
# add ["churn-1"] -> remove ["churn-1"] -> add ["churn-1"] is a person leaving and coming back,
# while the same add sent 8 times (4 at once) is one request retried. What tells them apart is
# what arrived in between, so the dedupe key is the body's hash plus the "generation" of its scope:
# - list add/remove: the id of the scope's latest batch that could undo it (a batch of the list of
#   another endpoint: a remove for an add, an add for a remove, a cohort webhook). Adds commute
#   with adds, so an add repeated after only other adds changes nothing and is the same request;
# - identify-style pushes (the workspace's scope; a body mixes true and false flags): the id of the
#   latest batch of the scope whose body differs. Only a repeat with nothing else in between is a
#   retry; anything else is applied again in arrival order, which is state-based and idempotent
#   (adding a member writes no ledger row, a property set twice is set once).
# Concurrent copies compute the same key and the unique (workspace, dedupe_key) index keeps one.
UNDOING_ENDPOINTS = {
    Endpoint.LIST_ADD: (Endpoint.LIST_REMOVE, Endpoint.COHORT_WEBHOOK),
    Endpoint.LIST_REMOVE: (Endpoint.LIST_ADD, Endpoint.COHORT_WEBHOOK),
}


def retry_key(exchange: Exchange, endpoint: str, segment_id: int | None = None) -> str:
    """The dedupe key of a body: equal for a retry of the same request, new for a re-entry."""
    key = exchange.key
    scope = f"{endpoint}\0{segment_id or ''}\0{identity_kind_of(key)}\0".encode()
    digest = "sha256:" + hashlib.sha256(scope + exchange.body).hexdigest()
    with connection.cursor() as cursor:
        if segment_id is not None:
            # One probe of the (workspace, segment, endpoint, id) index per endpoint.
            latest = "(SELECT max(id) FROM inbound_inboundbatch WHERE workspace_id = %s AND segment_id = %s AND endpoint = %s)"
            undoing = UNDOING_ENDPOINTS[endpoint]
            cursor.execute(
                f"SELECT GREATEST({', '.join([latest] * len(undoing))})",
                [value for other in undoing for value in (key.workspace_id, segment_id, other)],
            )
            return f"{digest}@{cursor.fetchone()[0] or 0}"
        cursor.execute(
            "SELECT id, dedupe_key FROM inbound_inboundbatch WHERE workspace_id = %s AND segment_id IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [key.workspace_id],
        )
        latest = cursor.fetchone()
    if latest is None:
        return f"{digest}@0"
    if latest[1].startswith(digest + "@"):
        return latest[1]  # the same body again, nothing in between: a retry of that batch
    return f"{digest}@{latest[0]}"


def blocked_rows(values: list) -> list[tuple[int, object, str]]:
    """Ids that will never become a profile (blocked values, too long), with their reasons.

    Runs on every acknowledged request, so plain clean strings take a fast path without a call.
    """
    blocked = blocked_values()
    rows = []
    for position, raw in enumerate(values):
        if (
            type(raw) is str
            and 0 < len(raw) <= MAX_IDENTITY_LENGTH
            and raw.lower() not in blocked
            and (raw.isascii() and "\x00" not in raw)  # else clean_identity looks for NUL and surrogates
            and not raw[0].isspace()
            and not raw[-1].isspace()
        ):
            continue
        reason = "blocked identifier value null" if raw is None else clean_identity(raw, blocked)[1]
        if reason:
            rows.append((position, raw, reason))
    return rows


def _invalid_rows(rows: list) -> list[dict]:
    return [
        {"position": position, "value": raw, "reason": reason} for position, raw, reason in rows[:INVALID_ROWS_SHOWN]
    ]


# --- handlers (after auth, size limits and JSON parsing) --------------------------------------------


def handle_lists(exchange: Exchange, payload: dict) -> JsonResponse:
    cohort = amplitude_lists.parse_create(payload)
    segment_row = ensure_segment(exchange.key.workspace_id, cohort)
    return JsonResponse({"listId": segment_row.pk})


def _list_segment(exchange: Exchange, list_id: int) -> Segment:
    segment_row = Segment.objects.filter(
        pk=list_id, workspace_id=exchange.key.workspace_id, type=SegmentType.PARTNER_AMPLITUDE
    ).first()
    if segment_row is None:  # unknown, or another workspace's list: the same 404, nothing revealed
        raise InboundError(
            404,
            "unknown_list",
            f"No list {list_id} in this workspace; create it with POST /lists.",
            fields={"listId": ["unknown"]},
        )
    return segment_row


def handle_list_change(exchange: Exchange, payload: dict, *, list_id: int, add: bool) -> JsonResponse:
    segment_row = _list_segment(exchange, list_id)
    change = amplitude_lists.parse_change(payload, add=add)
    invalid = blocked_rows(change.values)
    _check_backlog(exchange.key)
    endpoint = Endpoint.LIST_ADD if add else Endpoint.LIST_REMOVE
    batch, duplicate = accept_batch(
        exchange,
        endpoint,
        dedupe_key=retry_key(exchange, endpoint, segment_row.pk),
        segment_id=segment_row.pk,
        item_count=len(change.values),
        invalid=invalid,
    )
    exchange.batch_id, exchange.duplicate = batch.pk, duplicate
    return JsonResponse(
        {
            "ok": True,
            "batchId": batch.pk,
            "duplicate": duplicate,
            "received": len(change.values),
            "invalid": _invalid_rows([tuple(row) for row in batch.invalid]),
        }
    )


def _accept_people(exchange: Exchange, endpoint: str, people, dedupe_key: str, segment_id: int | None = None) -> dict:
    invalid = sorted(people.invalid + unusable_people(people), key=lambda row: row[0])
    _check_backlog(exchange.key)
    batch, duplicate = accept_batch(
        exchange,
        endpoint,
        dedupe_key=dedupe_key,
        segment_id=segment_id,
        item_count=len(people.messages) + len(invalid) + sum(people.other_calls.values()),
        invalid=invalid,
        other_calls=people.other_calls,
    )
    exchange.batch_id, exchange.duplicate = batch.pk, duplicate
    return {
        "batchId": batch.pk,
        "duplicate": duplicate,
        "received": batch.item_count,
        "invalid": _invalid_rows([tuple(row) for row in batch.invalid]),
    }


def handle_amplitude_identify(exchange: Exchange, payload: dict) -> JsonResponse:
    people = identify.parse_amplitude(payload)
    endpoint = Endpoint.AMPLITUDE_IDENTIFY
    return JsonResponse({"ok": True, **_accept_people(exchange, endpoint, people, retry_key(exchange, endpoint))})


def handle_cohort_webhook(exchange: Exchange, payload: dict) -> JsonResponse:
    cohort, _, message_id = cohort_webhook.parse_header(payload)
    people = cohort_webhook.parse(payload)
    # One segment per webhook batch: they apply in arrival order with that segment's other batches.
    segment_row = ensure_segment(exchange.key.workspace_id, cohort)
    body = _accept_people(exchange, Endpoint.COHORT_WEBHOOK, people, f"msg:{message_id}"[:200], segment_row.pk)
    return JsonResponse({"ok": True, **body})


def segment_handler(endpoint: str) -> Callable[[Exchange, dict], JsonResponse]:
    def handle(exchange: Exchange, payload: dict) -> JsonResponse:
        people = segment.parse(payload, V1_DEFAULT_TYPES[endpoint])
        body = _accept_people(exchange, endpoint, people, retry_key(exchange, endpoint))
        # Segment's SDKs only look at the status; {"success": true} is what its API answers.
        return JsonResponse({"success": True, **body})

    return handle


# --- the shared pipeline -----------------------------------------------------------------------------


def _record(exchange: Exchange, response, error: InboundError | None, error_text: str = "") -> None:
    request, key = exchange.request, exchange.key
    headers = loggable_headers(request.headers, settings.INBOUND_LOG_REDACT_HEADERS)
    prefix = key.prefix if key else ""
    if key is None:
        try:
            raw = raw_key_from(request)
        except InboundError:
            raw = None
        prefix = (raw or "")[:12]  # no longer than a real key's visible prefix: never a secret's worth
    try:
        entry = InboundRequest.objects.create(
            workspace_id=key.workspace_id if key else None,
            api_key=key,
            key_prefix=prefix,
            method=request.method[:8],
            path=request.get_full_path()[:300],
            endpoint=exchange.endpoint,
            status_code=response.status_code,
            error_code=error.code if error else "",
            error=(error.message if error else error_text)[:4000],
            duration_ms=round((time.monotonic() - exchange.started) * 1000, 2),
            body_bytes=len(exchange.body),
            # A NUL byte is invalid JSON but may still be sent: the log keeps it visible, not refused.
            body_preview=exchange.body[:PREVIEW_CHARS].decode("utf-8", "replace").replace("\x00", "\\u0000"),
            headers=headers,
            remote_addr=(request.META.get("REMOTE_ADDR") or "")[:64],
            batch_id=exchange.batch_id,
            duplicate=exchange.duplicate,
            received_at=timezone.now(),
        )
        _trim_log(entry)
    except Exception:
        logger.exception("could not record an inbound request")


def _trim_log(entry: InboundRequest) -> None:
    """Keep the last INBOUND_LOG_SIZE requests per key (per workspace for unknown keys)."""
    column, value = ("api_key_id", entry.api_key_id) if entry.api_key_id else ("workspace_id", entry.workspace_id)
    where = f"{column} = %s" if value is not None else "api_key_id IS NULL AND workspace_id IS NULL"
    params = [value] if value is not None else []
    if entry.api_key_id is None and value is not None:
        where += " AND api_key_id IS NULL"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM inbound_inboundrequest WHERE {where} AND id <= "
            f"(SELECT id FROM inbound_inboundrequest WHERE {where} ORDER BY id DESC OFFSET %s LIMIT 1)",
            [*params, *params, settings.INBOUND_LOG_SIZE],
        )


def inbound_endpoint(endpoint: str, handler) -> Callable[..., JsonResponse]:
    @csrf_exempt
    def view(request, **kwargs):
        exchange = Exchange(request, endpoint)
        error = None
        error_text = ""
        try:
            if request.method != "POST":
                raise InboundError(405, "method_not_allowed", "Use POST.", headers={"Allow": "POST"})
            exchange.key = authenticate_inbound(request)
            exchange.body = read_body(request)
            payload = parse_json_object(exchange.body)
            response = handler(exchange, payload, **kwargs)
        except InboundError as exc:
            error = exc
            response = json_error(exc.status, exc.code, exc.message, exc.fields, headers=exc.headers)
        except Exception as exc:
            logger.exception("inbound %s failed", endpoint)
            error_text = f"{type(exc).__name__}: {exc}"
            response = json_error(500, "server_error", "An internal error occurred; it has been logged.")
        _record(exchange, response, error, error_text)
        return response

    view.endpoint = endpoint
    return view


lists = inbound_endpoint("lists", handle_lists)
list_add = inbound_endpoint(
    Endpoint.LIST_ADD,
    lambda exchange, payload, list_id: handle_list_change(exchange, payload, list_id=list_id, add=True),
)
list_remove = inbound_endpoint(
    Endpoint.LIST_REMOVE,
    lambda exchange, payload, list_id: handle_list_change(exchange, payload, list_id=list_id, add=False),
)
amplitude_identify = inbound_endpoint(Endpoint.AMPLITUDE_IDENTIFY, handle_amplitude_identify)
amplitude_cohort_webhook = inbound_endpoint(Endpoint.COHORT_WEBHOOK, handle_cohort_webhook)
v1_views = {
    name: inbound_endpoint(endpoint, segment_handler(endpoint))
    for name, endpoint in (
        ("identify", Endpoint.V1_IDENTIFY),
        ("batch", Endpoint.V1_BATCH),
        ("track", Endpoint.V1_TRACK),
        ("page", Endpoint.V1_PAGE),
        ("screen", Endpoint.V1_SCREEN),
        ("group", Endpoint.V1_GROUP),
        ("alias", Endpoint.V1_ALIAS),
    )
}
