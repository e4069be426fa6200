"""The tiny base every outbound connector stands on: an HTTP client with timeouts, an error policy,
and the hooks a vendor class fills in (build a request, read per-row rejections, explain an error).

A connector knows nothing about runs, retries or the database: the delivery engine
(integrations.delivery.engine) batches rows, calls `send()`, and decides what to do with a
`ConnectorError` purely from its `policy`, read in one place (integrations.delivery.calls.
call_with_retries). That keeps each vendor class ~50 lines; a partner that needs another retry rule
says so in data (a RetryRule class attribute), not in a loop of its own.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import requests
from django.conf import settings
from rest_framework import serializers

from integrations.connectors.registry import CONNECTORS
from integrations.credentials import CredentialField
from integrations.masking import MASK, Masker
from integrations.outbound import (
    COULD_NOT_CONNECT,
    OutboundRefused,
    OutboundSession,
    check_url,
    clip,
    describe_failure,
    operator_allowed_url,
    partner_summary,
    raw_excerpt,
    response_summary,
    status_phrase,
)

logger = logging.getLogger(__name__)


class Policy(StrEnum):
    """What the engine should do with a failed call. The only thing retry code looks at
    (integrations.delivery.calls.call_with_retries)."""

    TRANSIENT = "transient"  # timeout, 5xx, connection reset: retry with backoff (burns an attempt)
    RATE_LIMITED = "rate_limited"  # 429: wait Retry-After (does not burn an attempt)
    TOO_LARGE = "too_large"  # 413 or over our own byte cap: split the batch, nothing was applied
    REJECTED = "rejected"  # other 4xx: the partner refuses this batch; bisect to find the bad rows
    AUTH = "auth"  # 401/403: stop, disable the destination with the partner's message
    PERMANENT = "permanent"  # misconfiguration (bad URL, missing target): stop the run


class ConnectorError(Exception):
    def __init__(
        self,
        policy: Policy,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.policy, self.message, self.status, self.retry_after, self.code = policy, message, status, retry_after, code


@dataclass(frozen=True)
class RetryRule:
    """Where a partner's calls are retried differently from the default (see call_with_retries)."""

    # True: a wait longer than DELIVERY_SHORT_WAIT_SECONDS is kept in the database (the run or stream
    # is parked and resumed later), never in a worker. False: for a flow with nowhere to park, the
    # wait is cut to the short wait and the call tried again in the worker.
    park_long_waits: bool = True


@dataclass(frozen=True)
class Host:
    """A host the partner fixes (a region, its one API host): chosen from a list, never typed."""

    label: str
    url: str


@dataclass(frozen=True)
class Limits:
    """A partner's documented caps. The engine never exceeds any of them."""

    records_per_request: int
    bytes_per_request: int = 2 * 1024 * 1024
    concurrent_requests: int = 4


@dataclass(frozen=True)
class OutRow:
    """One planned row: a person entering ("add") or leaving ("remove") the segment at the partner."""

    seq: int  # the work item's id: stable, so batch keys (message ids) survive retries and restarts
    profile_id: int
    action: str
    user_id: str | None
    device_id: str | None
    properties: dict | None = None

    @property
    def partner_id(self) -> str:
        # Amplitude's contract: the mapped user id, or the anonymous (device) id when there is none.
        return self.user_id or self.device_id or ""


@dataclass(frozen=True)
class Batch:
    action: str  # "add" | "remove"; a batch never mixes them (webhooks: all-enter or all-exit)
    rows: list[OutRow]

    @property
    def key(self) -> str:
        """Stable across retries of the same rows (and across worker restarts)."""
        return f"{self.rows[0].seq}-{self.rows[-1].seq}-{len(self.rows)}"

    def halves(self) -> tuple[Batch, Batch]:
        middle = len(self.rows) // 2
        return Batch(self.action, self.rows[:middle]), Batch(self.action, self.rows[middle:])


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    name: str
    external_id: str
    partner_name: str = "Amplitude"

    @classmethod
    def of(cls, segment: Any) -> SegmentInfo:
        """From an audiences.Segment (connectors never see the model itself)."""
        return cls(segment.pk, segment.name, segment.external_id, segment.partner_name)


@dataclass(frozen=True)
class Arrival:
    """Where a sync's data is at the partner once a run delivered it, and how to use it there: the
    sync page says this after a run (Connector.describe_arrival)."""

    where: str  # a sentence: what the partner now holds for the segment
    names: tuple[tuple[str, str], ...] = ()  # the exact names to use there: (what it is, the name)
    how: tuple[str, ...] = ()  # how to use it at the partner, a sentence each
    dashboard_url: str = ""  # the partner's own dashboard, where one exists
    dashboard_label: str = ""


@dataclass
class OutboundRequest:
    method: str
    url: str
    json: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.json, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Rejection:
    seq: int
    reason: str
    code: str = ""


@dataclass
class CallRecord:
    """What the partner-call log keeps: summaries only, secrets masked, headers never.

    `response_summary` and `error` are what users read (status, the partner's own code and message,
    the policy's refusal or the generic "could not connect"); `response_excerpt` (the raw start of
    the answer) and `error_detail` are for ops in the admin only."""

    method: str
    url: str
    request_summary: str
    status_code: int | None
    response_summary: str
    duration_ms: int
    error: str = ""
    response_excerpt: str = ""
    error_detail: str = ""


class HttpClient:
    """The outgoing-request policy's session (integrations.outbound) with timeouts, one Session per
    thread (Sessions are not thread-safe), and a call log hook."""

    def __init__(self, *, on_call: Callable[[CallRecord], None] | None = None, secrets: tuple[str, ...] = ()):
        self.on_call = on_call
        # Every credential value and credential header sent, in every form a partner could echo it.
        self.masker = Masker(secrets)
        self._local = threading.local()
        self.timeout = (settings.DELIVERY_CONNECT_TIMEOUT, settings.DELIVERY_READ_TIMEOUT)

    @property
    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = OutboundSession()
        return self._local.session

    def mask(self, text: str) -> str:
        return self.masker(text)

    def send(self, request: OutboundRequest, body: bytes, summary: str, *, hold: bool = False) -> requests.Response:
        """Make the call and log it. `hold`: when an answer comes back, its log entry waits for
        `release`, which the caller makes once it has read the answer (a 2xx may still refuse rows)."""
        headers = {"Content-Type": "application/json", **request.headers}
        started = time.monotonic()
        response = None
        error = detail = ""
        try:
            # Redirects are never followed: a partner that redirects is misconfigured (raise_for_response
            # says so), and custom credential headers must not travel to another host.
            response = self.session.request(
                request.method, request.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
            return response
        except OutboundRefused as refused:
            error = detail = refused.message
            raise ConnectorError(Policy.PERMANENT, refused.message) from None
        except requests.RequestException as exc:
            # Refused, reset, timed out or unknown host read the same to users: no port scanning
            # through the console. The detail is for ops (the log and the admin's call log).
            error, detail = COULD_NOT_CONNECT.format(who="the partner"), describe_failure(exc)
            logger.warning("partner call %s %s failed: %s", request.method, self.mask(request.url), self.mask(detail))
            raise ConnectorError(Policy.TRANSIENT, error) from None
        finally:
            if self.on_call:
                record = CallRecord(
                    method=request.method,
                    url=self.mask(request.url),
                    request_summary=self.mask(summary),
                    status_code=response.status_code if response is not None else None,
                    response_summary=self.mask(response_summary(response)) if response is not None else "",
                    duration_ms=int((time.monotonic() - started) * 1000),
                    error=self.mask(error),
                    response_excerpt=self.mask(raw_excerpt(response)) if response is not None else "",
                    error_detail=self.mask(detail),
                )
                if hold and response is not None:
                    self._local.held = record
                else:
                    self.on_call(record)

    def release(self, refused: str = "") -> None:
        """Log the call `send(hold=True)` kept back; `refused` is what the partner refused in an answer
        whose status says success, so the call log never shows that call as a plain success."""
        record = getattr(self._local, "held", None)
        self._local.held = None
        if record is None or not self.on_call:
            return
        if refused and not record.error:
            record.error = self.mask(clip(refused, 500))
        self.on_call(record)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Connector:
    """One vendor = one subclass: declare kind/Config/credentials/limits, build requests, read answers."""

    kind: ClassVar[str]  # its key in integrations.connectors.registry, and its authorizations' provider
    Config: ClassVar[type[serializers.Serializer]]
    limits: ClassVar[Limits]
    # What its authorization holds: which fields are secret, which optional (integrations.credentials).
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    # Request headers that carry credentials (lower case): masked in the dry run, never logged.
    # credential_headers() adds the ones a destination's config names.
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})
    # Hosts the partner fixes, by code (e.g. regional hosts); empty when the URL is the customer's.
    hosts: ClassVar[dict[str, Host]] = {}
    # Config fields naming where the credentials are sent (URL, host, region).
    host_fields: ClassVar[tuple[str, ...]] = ()
    # True when the partner keeps membership (a list): re-sending a row is harmless but wasteful.
    list_style: ClassVar[bool] = True
    # The sync wizard asks for a device id (anonymous people) only when the partner takes them.
    accepts_device_id: ClassVar[bool] = True
    # The partner identifies people by their device only (Kochava): a member without the sync's device
    # id is an invalid row, never sent (integrations.delivery.planning), rather than a partner rejection.
    requires_device_id: ClassVar[bool] = False
    # How failed calls are retried (Policy says what failed; this says what the partner needs).
    retry_rule: ClassVar[RetryRule] = RetryRule()
    # An erasure (audiences.erasure) asks a partner with a deletion API to delete the person
    # (delete_people); for the others it tells the asker this, or `deletion_note` when set.
    deletion_api: ClassVar[bool] = False
    deletion_note: ClassVar[str] = ""

    def __init__(
        self,
        config: dict,
        secrets: dict,
        *,
        segment: SegmentInfo,
        partner_state: dict | None = None,
        auth_fields: dict | None = None,
        run_id: int = 0,
        run_started: float | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        # secrets: decrypted Authorization secrets (masked out of every log line); auth_fields: its
        # plain fields (account ids, header names).
        self.config, self.secrets, self.segment = config, secrets, segment
        self.auth_fields = dict(auth_fields or {})
        self.partner_state = dict(partner_state or {})
        self.run_id, self.run_started = run_id, run_started or time.time()
        self.http = HttpClient(on_call=on_call, secrets=self.credential_values())

    # ---- hooks -------------------------------------------------------------------------------
    @classmethod
    def describe_target(cls, config: dict, segment: SegmentInfo) -> str:
        """In words, for the sync wizard and the sync page: what a sync of `segment` does at the partner."""
        return f"Updates at the partner for “{segment.name}”."

    @classmethod
    def describe_arrival(cls, config: dict, segment: SegmentInfo, *, partner_state: dict, auth_fields: dict) -> Arrival:
        """In words, for the sync page after a run: where the data landed at the partner and how to use
        it there. `partner_state` is what the syncs created there (e.g. a list id); `auth_fields` the
        authorization's plain fields (an account's region), never its secrets."""
        return Arrival(where=cls.describe_target(config, segment))

    def credential_headers(self) -> frozenset[str]:
        """The request headers (lower case) that carry this destination's credentials."""
        return self.secret_headers

    def credential_values(self) -> tuple[str, ...]:
        """What is masked wherever a person could read it (integrations.masking): each secret of the
        authorization and the value of each credential header as sent (a Basic header's token)."""
        secret = self.credential_headers()
        headers = [value for name, value in self.auth_headers().items() if name.lower() in secret]
        return tuple(str(value) for value in [*self.secrets.values(), *headers] if value)

    def mask(self, text: str) -> str:
        return self.http.mask(text)

    @classmethod
    def validate_config(cls, data: dict) -> dict:
        """Validated config or serializers.ValidationError naming each bad field."""
        serializer = cls.Config(data=data)
        serializer.is_valid(raise_exception=True)
        validated = dict(serializer.validated_data)
        # Every URL the connector will call passes the outgoing-request policy's URL rule here, so a
        # form, the API or the admin refuses an inward URL when it is saved, naming the rule.
        refused = {}
        for name, field_ in serializer.fields.items():
            if isinstance(field_, serializers.URLField) and validated.get(name):
                try:
                    check_url(validated[name])
                except OutboundRefused as refusal:
                    refused[name] = [refusal.message]
        # A host the partner fixes is chosen from its list; the only other URL accepted is one the
        # operator allowed (OUTBOUND_ALLOWED_NETWORKS: the sandbox, a proxy), never one merely typed.
        if cls.hosts:
            fixed = {host.url.rstrip("/") for host in cls.hosts.values()}
            for name in cls.host_fields:
                value = validated.get(name)
                typed = isinstance(value, str) and value.startswith(("http://", "https://")) and name not in refused
                if typed and value.rstrip("/") not in fixed and not operator_allowed_url(value):
                    choices = ", ".join(sorted(fixed))
                    refused[name] = [f"{cls.partner_name()} is reached only at {choices}: choose it from the list."]
        if refused:
            raise serializers.ValidationError(refused)
        return validated

    @classmethod
    def partner_name(cls) -> str:
        return CONNECTORS[cls.kind].partner

    @classmethod
    def host_values(cls, config: dict) -> dict[str, str]:
        """Where the credentials go, as the config says it (URLs without a trailing slash, regions by
        code): credentials entered for one host are never sent to another, so a change here needs them
        entered again (integrations.credential_hosts)."""
        values = {}
        for name in cls.host_fields:
            value = config.get(name)
            values[name] = value.rstrip("/").lower() if isinstance(value, str) else str(value or "")
        return values

    def prepare(self) -> dict:
        """Create the partner-side target on the first sync (e.g. a list); returns the new partner_state."""
        return self.partner_state

    def build_request(self, batch: Batch) -> OutboundRequest:
        raise NotImplementedError

    def parse_response(self, response: requests.Response, batch: Batch) -> list[Rejection]:
        """Per-row rejections in a 2xx answer. Default: none."""
        return []

    def error_message(self, response: requests.Response) -> str:
        """The vendor's own error code and message, parsed and bounded (integrations.outbound.partner_summary);
        never the raw body, which users may not read."""
        return partner_summary(response) or status_phrase(response.status_code)

    def raise_for_response(self, response: requests.Response) -> None:
        """Turn an HTTP answer into a ConnectorError with the right policy (vendors may override)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        # Bounded whatever a vendor's error_message returns: this lands in last_error and run errors.
        # Masked: a partner may quote the credentials it refused in its error.
        message = self.mask(f"HTTP {status}: {clip(self.error_message(response), 300)}")
        if status in (401, 403):
            raise ConnectorError(Policy.AUTH, message, status=status)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise ConnectorError(Policy.RATE_LIMITED, message, status=status, retry_after=retry_after)
        if status == 413:
            raise ConnectorError(Policy.TOO_LARGE, message, status=status)
        if status in (408, 425) or status >= 500:
            raise ConnectorError(
                Policy.TRANSIENT,
                message,
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400 or status in (404, 405):
            raise ConnectorError(Policy.PERMANENT, message, status=status)
        raise ConnectorError(Policy.REJECTED, message, status=status, code=str(status))

    def property_keys(self) -> list[str]:
        """Profile properties the destination sends with each row (its "user_properties" setting).

        The engine reads only these keys from each profile, so a destination that selects none costs no join.
        """
        return [str(key) for key in self.config.get("user_properties") or []]

    @classmethod
    def resend_note(cls, rows: int, config: dict) -> str:
        """What re-sending up to `rows` rows (a worker lost with them in flight) may have done at the partner."""
        if cls.list_style:
            return (
                f"up to {rows:,} rows may have been sent twice (a second add or remove changes nothing at the partner)"
            )
        return f"up to {rows:,} rows may have been sent to the partner twice"

    def concurrent_requests(self) -> int:
        """The cap on requests in flight, counted across every worker (see concurrency_key)."""
        return self.limits.concurrent_requests

    def concurrency_key(self, destination_id: int) -> str:
        """What the concurrent-requests cap counts: one destination by default; a partner whose cap is
        per account shares it between every destination of that account."""
        return f"destination:{destination_id}"

    def records_per_request(self) -> int:
        """The partner cap, lowered by the destination's own batch_size setting when it has one."""
        return min(
            self.limits.records_per_request, int(self.config.get("batch_size") or self.limits.records_per_request)
        )

    def test_connection(self) -> str:
        """Prove the credentials and URL work without changing partner data. Returns a short message."""
        raise NotImplementedError

    def delete_people(self, identities: list[str], device_ids: list[str]) -> str:
        """Ask the partner to delete the people it knows by these user ids or (for people sent
        without one) device ids. Returns the partner's confirmation; ConnectorError otherwise."""
        raise NotImplementedError

    # ---- the one entry point the engine calls --------------------------------------------------
    def send(self, batch: Batch) -> list[Rejection]:
        request = self.build_request(batch)
        body = request.encode()
        if len(body) > self.limits.bytes_per_request:
            # Caught before sending: the engine splits the batch; the partner never sees an oversize call.
            raise ConnectorError(Policy.TOO_LARGE, f"{len(body)} bytes is over the {self.limits.bytes_per_request} cap")
        summary = f"{batch.action} {len(batch.rows)} rows, {len(body)} bytes, batch {batch.key}"
        response = self.http.send(request, body, summary, hold=True)
        refused = ""
        try:
            self.raise_for_response(response)
            rejections = [Rejection(r.seq, self.mask(r.reason), r.code) for r in self.parse_response(response, batch)]
            if rejections:
                count = (
                    f"all {len(batch.rows)}"
                    if len(rejections) == len(batch.rows)
                    else f"{len(rejections)} of {len(batch.rows)}"
                )
                refused = f"{count} rows refused in a {response.status_code} answer: {rejections[0].reason}"
            return rejections
        except ConnectorError as error:
            error.message = self.mask(error.message)
            error.args = (error.message,)
            if 200 <= response.status_code < 300:  # a refusal inside a success status (CleverTap's "fail")
                refused = error.message
            raise
        finally:
            self.http.release(refused)

    def sample_request(self, batch: Batch) -> dict:
        """What would be sent (dry run): credential headers masked by name, and every credential value,
        in any encoding, masked wherever else it appears (the URL, the body, another header)."""
        request = self.build_request(batch)
        secret = self.credential_headers()
        headers = {
            name: MASK if name.lower() in secret or _is_secret_header(name) else value
            for name, value in request.headers.items()
        }
        sample = {"method": request.method, "url": request.url, "headers": headers, "body": request.json}
        return self.http.masker.deep(sample)

    def post_json(self, url: str, payload: Any, summary: str) -> requests.Response:
        """For setup calls (list creation, connection tests): same client, same log, same policy."""
        request = OutboundRequest("POST", url, payload, self.auth_headers())
        response = self.http.send(request, request.encode(), summary)
        self.raise_for_response(response)
        return response

    def auth_headers(self) -> dict[str, str]:
        return {}


def _is_secret_header(name: str) -> bool:
    """A header named like a credential, whoever sends it (a net under each connector's secret_headers)."""
    lowered = name.lower()
    return lowered in {"cookie", "api_key", "x-api-key"} or any(
        word in lowered for word in ("key", "token", "secret", "passcode", "auth")
    )


def amplitude_context() -> dict:
    """The `context` Amplitude sends with every cohort-sync call."""
    return {
        "integration": {"name": settings.DELIVERY_INTEGRATION_NAME, "version": settings.DELIVERY_INTEGRATION_VERSION}
    }


class AmplitudeAuthConfig(serializers.Serializer):
    """Auth choices of Amplitude's Integration Portal: Basic (api_key:""), an api-key header, or Bearer."""

    auth_mode = serializers.ChoiceField(choices=["basic", "header", "bearer", "none"], default="basic")
    auth_header = serializers.CharField(
        default="api_key", max_length=64, help_text="Header name carrying the API key when auth_mode is header."
    )


class AmplitudeContractConnector(Connector):
    """A partner on one of Amplitude's own contracts: one API key, sent as its AmplitudeAuthConfig says."""

    credential_fields = (CredentialField("api_key"),)

    def auth_headers(self) -> dict[str, str]:
        api_key = self.secrets.get("api_key", "")
        mode = self.config.get("auth_mode", "basic")
        if mode == "basic":
            return {"Authorization": "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()}
        if mode == "header":
            return {self.config.get("auth_header") or "api_key": api_key}
        if mode == "bearer":
            return {"Authorization": f"Bearer {api_key}"}
        return {}

    def credential_headers(self) -> frozenset[str]:
        if self.config.get("auth_mode", "basic") == "header":
            return self.secret_headers | {(self.config.get("auth_header") or "api_key").lower()}
        return self.secret_headers
