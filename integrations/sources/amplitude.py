"""HTTP clients for Amplitude's Behavioral Cohorts API and Export API (docs/partner-apis.md sections 1-2).

Policy, in one place:
- 429: wait (Retry-After, else exponential backoff) without burning a retry, up to a cap;
- 500/502/503 and connection errors: retry with backoff, SOURCES_HTTP_RETRIES times;
- 401/403: permanent, "wrong credentials or region", said plainly;
- every request holds a slot of a Redis semaphore per project, so all workers together never
  exceed Amplitude's concurrency limit (5 shared by cohort downloads and the dashboard API).
Bodies of files are streamed to a file object, never held in memory.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Self
from urllib.parse import urljoin

import requests
from django.conf import settings

from integrations.credentials import CredentialField
from integrations.masking import Masker
from integrations.outbound import (
    COULD_NOT_CONNECT,
    OutboundRefused,
    OutboundSession,
    clip,
    describe_failure,
    partner_summary,
    raw_excerpt,
    status_phrase,
)
from integrations.redis_client import redis_client

logger = logging.getLogger(__name__)

# What an Amplitude authorization holds: the project's API key and secret key (Basic auth).
CREDENTIAL_FIELDS = (CredentialField("api_key"), CredentialField("secret_key"))

CHUNK = 1 << 20
AUTH_HINT = "Amplitude refused the credentials (HTTP {status}): the API key or secret key is wrong, or the project lives in the other data region (US/EU)."


class AmplitudeError(Exception):
    """A failed exchange. `transient` errors may succeed later; `status` is Amplitude's HTTP status."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


def error_message(response: requests.Response, mask: Masker | None = None) -> str:
    """Amplitude's error code and message ({"error": {"message", "metadata": {"details"}}}, or S3's XML
    error) parsed and bounded: users read it in run errors and test results. The raw start of the
    answer goes to the log, for ops only. Both masked: an answer may quote the keys it refused."""
    mask = mask or Masker()
    logger.warning("Amplitude answered HTTP %s: %r", response.status_code, mask(raw_excerpt(response)))
    return mask(partner_summary(response) or status_phrase(response.status_code))


# A counting semaphore with leases: a crashed worker's slot expires instead of leaking forever.
_ACQUIRE_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
    redis.call('EXPIRE', KEYS[1], 86400)
    return 1
end
return 0
"""


@contextmanager
def concurrency_slot(key: str, limit: int, lease_seconds: float, wait_seconds: float = 600.0) -> Iterator[None]:
    client = redis_client()
    token = secrets.token_hex(8)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        now = time.time()
        if client.eval(_ACQUIRE_LUA, 1, key, now, now + lease_seconds, limit, token):
            break
        if time.monotonic() > deadline:
            raise AmplitudeError(f"No free request slot after {wait_seconds:.0f} s (limit {limit}).", transient=True)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        client.zrem(key, token)


@dataclass
class AmplitudeClient:
    base_url: str
    api_key: str
    secret_key: str
    slot_key: str
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def for_project(cls, project) -> AmplitudeClient:
        secrets_ = project.authorization.secrets
        return cls(
            project.api_base_url,
            secrets_.get("api_key", ""),
            secrets_.get("secret_key", ""),
            f"sources:amplitude:slots:{project.pk}",
        )

    def __post_init__(self) -> None:
        # The outgoing-request policy (integrations.outbound): https, public addresses, no env proxies.
        self.session = OutboundSession()
        self.session.headers["User-Agent"] = "CohortConsole/1.0"
        # The keys and the Basic header they make, in every form an answer could echo them.
        basic = requests.auth._basic_auth_str(self.api_key, self.secret_key) if self.api_key else ""
        self.mask = Masker([self.api_key, self.secret_key, basic])

    def for_thread(self) -> Self:
        """A copy for another thread, with a requests.Session of its own (sessions are not shared
        between threads). A subclass (a test's fake) stays that subclass."""
        return dataclasses.replace(self)

    def __repr__(self) -> str:  # keep keys out of tracebacks
        return f"<AmplitudeClient {self.base_url}>"

    # --- transport --------------------------------------------------------------------------
    def _get(
        self,
        path_or_url: str,
        *,
        params=None,
        auth: bool = True,
        stream: bool = False,
        passthrough: frozenset[int] = frozenset(),
    ) -> requests.Response:
        """GET with the retry policy. Statuses in `passthrough` are returned to the caller as they are."""
        url = path_or_url if path_or_url.startswith("http") else self.base_url + path_or_url
        retries, waits = 0, 0
        backoff = settings.SOURCES_RETRY_BACKOFF
        while True:
            try:
                response = self.session.get(
                    url,
                    params=params,
                    auth=(self.api_key, self.secret_key) if auth else None,
                    allow_redirects=False,
                    stream=stream,
                    timeout=(10, settings.SOURCES_HTTP_TIMEOUT),
                )
            except OutboundRefused as refused:
                raise AmplitudeError(refused.message) from None
            except requests.RequestException as exc:
                # One message whatever the cause (refused, reset, timed out, unknown host): no port
                # scanning through the console; the detail is in the log for ops.
                logger.warning("Amplitude call %s failed: %s", url.split("?", 1)[0], describe_failure(exc))
                retries += 1
                if retries > settings.SOURCES_HTTP_RETRIES:
                    raise AmplitudeError(COULD_NOT_CONNECT.format(who="Amplitude"), transient=True) from None
                self.sleep(backoff * 2 ** (retries - 1))
                continue
            status = response.status_code
            if status in passthrough or status < 400:
                return response
            if status == 429:
                waits += 1
                if waits > 4 * settings.SOURCES_HTTP_RETRIES:
                    raise AmplitudeError(
                        f"Amplitude kept throttling (HTTP 429): {error_message(response, self.mask)}",
                        status=429,
                        transient=True,
                    )
                retry_after = response.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.isdigit() else backoff * 2 ** min(waits - 1, 5)
                response.close()
                self.sleep(wait)
                continue
            if status in (401, 403):
                raise AmplitudeError(
                    f"{AUTH_HINT.format(status=status)} Amplitude said: {error_message(response, self.mask)}",
                    status=status,
                )
            if status in (500, 502, 503, 504):
                retries += 1
                if retries > settings.SOURCES_HTTP_RETRIES:
                    raise AmplitudeError(
                        f"Amplitude failed with HTTP {status} after {retries} tries: {error_message(response, self.mask)}",
                        status=status,
                        transient=True,
                    )
                response.close()
                self.sleep(backoff * 2 ** (retries - 1))
                continue
            raise AmplitudeError(
                f"Amplitude answered HTTP {status}: {error_message(response, self.mask)}", status=status
            )

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with concurrency_slot(
            self.slot_key, settings.SOURCES_CONCURRENT_REQUESTS, lease_seconds=settings.SOURCES_HTTP_TIMEOUT * 30
        ):
            yield

    # --- Behavioral Cohorts API ---------------------------------------------------------------
    def list_cohorts(self) -> list[dict]:
        with self._slot():
            response = self._get("/api/3/cohorts")
        try:
            cohorts = response.json()["cohorts"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise AmplitudeError('Amplitude\'s cohort list was not the expected JSON ({"cohorts": [...]}).') from None
        return cohorts

    def request_cohort(self, cohort_id: str, *, props: bool, prop_keys: list[str] = ()) -> str:
        params: list[tuple[str, str]] = [("props", "1" if props else "0")]
        params += [("propKeys", key) for key in prop_keys] if props else []
        with self._slot():
            response = self._get(f"/api/5/cohorts/request/{cohort_id}", params=params)
        try:
            return str(response.json()["request_id"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise AmplitudeError(f"Requesting cohort {cohort_id}: no request_id in Amplitude's answer.") from None

    def wait_for_cohort(self, request_id: str, on_poll: Callable[[int], None] | None = None) -> None:
        """Poll until JOB COMPLETED (200). 202 JOB INPROGRESS waits; anything else is a failure."""
        delay = settings.SOURCES_POLL_INTERVAL
        deadline = time.monotonic() + settings.SOURCES_POLL_TIMEOUT
        polls = 0
        while True:
            with self._slot():
                response = self._get(f"/api/5/cohorts/request-status/{request_id}")
            polls += 1
            try:
                state = response.json().get("async_status")
            except (ValueError, AttributeError, RecursionError):
                state = None
            if response.status_code == 200 and state == "JOB COMPLETED":
                return
            if response.status_code != 202 or state != "JOB INPROGRESS":
                raise AmplitudeError(
                    f"Amplitude's cohort job {request_id} ended as {clip(state or 'unknown', 80)} (HTTP {response.status_code}).",
                    status=response.status_code,
                )
            if on_poll:
                on_poll(polls)
            if time.monotonic() > deadline:
                raise AmplitudeError(
                    f"Amplitude's cohort job {request_id} was still in progress after "
                    f"{settings.SOURCES_POLL_TIMEOUT} s.",
                    transient=True,
                )
            self.sleep(delay)
            delay = min(delay * 1.5, settings.SOURCES_POLL_MAX_INTERVAL)

    def download_cohort(self, request_id: str, dest: BinaryIO) -> int:
        """Stream the cohort file (raw bytes, possibly gzip) into `dest`; returns the byte count.

        A 302 goes to a pre-signed S3 link valid for a minute. It is followed by hand, WITHOUT the
        Basic auth header (S3 rejects a second auth mechanism, and the key must not leak to a third
        host), through the same session: the hop passes the outgoing-request policy like any call, so
        a redirect inward is refused. An expired link is re-minted by asking /file again.
        """
        path = f"/api/5/cohorts/request/{request_id}/file"
        for attempt in range(3):
            with self._slot():
                response = self._get(path, stream=True)
                if response.status_code in (301, 302, 303, 307, 308):
                    location = urljoin(response.url, response.headers.get("Location", ""))
                    response.close()
                    response = self._get(location, auth=False, stream=True, passthrough=frozenset({400, 403}))
                    if response.status_code in (400, 403):
                        message = error_message(response, self.mask)
                        if response.status_code == 403 and "expired" in message.lower() and attempt < 2:
                            continue  # the one-minute link expired before we got to it: mint a new one
                        raise AmplitudeError(
                            f"The cohort file link failed (HTTP {response.status_code}): {message}",
                            status=response.status_code,
                        )
                if response.status_code != 200:
                    raise AmplitudeError(
                        f"Cohort file: unexpected HTTP {response.status_code}.", status=response.status_code
                    )
                return _stream_to(response, dest)
        raise AmplitudeError("The cohort file link kept expiring before the download started.", transient=True)

    # --- Export API --------------------------------------------------------------------------
    def export(self, first_hour: datetime, last_hour: datetime, dest: BinaryIO) -> int | None:
        """Stream the zip of [first_hour, last_hour] (inclusive UTC hours) into `dest`.

        Returns the byte count, or None for 404 (no data in the window). 400 (over 4 GB) and 504
        (too slow) raise AmplitudeError with that status, so the caller can shrink the window.
        """
        params = {"start": f"{first_hour:%Y%m%dT%H}", "end": f"{last_hour:%Y%m%dT%H}"}
        with self._slot():
            response = self._get("/api/2/export", params=params, stream=True, passthrough=frozenset({400, 404, 504}))
            if response.status_code == 404:
                response.close()
                return None
            if response.status_code in (400, 504):
                raise AmplitudeError(
                    f"Export {params['start']}..{params['end']}: HTTP {response.status_code} {error_message(response, self.mask)}",
                    status=response.status_code,
                )
            return _stream_to(response, dest)


def _stream_to(response: requests.Response, dest: BinaryIO) -> int:
    """Copy the body as sent (no Content-Encoding decoding: the reader sniffs gzip itself)."""
    size = 0
    try:
        for chunk in response.raw.stream(CHUNK, decode_content=False):
            dest.write(chunk)
            size += len(chunk)
    except Exception as exc:  # noqa: BLE001 - urllib3's ProtocolError/ReadTimeoutError, OSError
        raise AmplitudeError(
            f"The download broke off after {size} bytes: {exc.__class__.__name__}", transient=True
        ) from None
    finally:
        response.close()
    dest.flush()
    return size
