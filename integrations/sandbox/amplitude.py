"""Sandbox (fake) Amplitude server: Behavioral Cohorts API and Export API.

Built to the contracts in ``docs/partner-apis.md`` sections 1-2, for tests, benchmarks and
the demo. Stdlib only (no Django), a real HTTP server on ``ThreadingHTTPServer``.

    with running_amplitude_sandbox() as amp:
        amp.sandbox.add_cohort("26umsb5", "Power users", size=5000)
        requests.get(amp.base_url + "/api/3/cohorts", auth=amp.auth)

Large responses (cohort CSVs, export zips) are generated row by row straight into the
socket with chunked transfer encoding, so a 2,000,000-member cohort never sits in memory.
CLI: ``python -m integrations.sandbox.amplitude --port 8765 --cohorts 3 --members 5000``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import copy
import dataclasses
import gzip
import itertools
import json
import queue
import random
import re
import secrets
import sys
import threading
import time
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from .datagen import CohortSpec, EventSource, Population, csv_columns, generated_csv, members_csv

DEFAULT_API_KEY = "demo"
DEFAULT_SECRET_KEY = "demo-secret"
DEFAULT_PROJECT_ID = 187520
_ERROR_TYPES = {
    400: "invalid",
    403: "forbidden",
    404: "not_found",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}
_BAD_LINES = (
    '{"event_type":"Purchase","user_id":"user-1"',
    "not json at all",
    "<html><body>502 Bad Gateway</body></html>",
    '{"uuid": NaN-ish}',
)


@dataclass
class Faults:
    """Runtime knobs; change with ``AmplitudeSandbox.set_faults`` or ``POST /_sandbox/faults``.

    Counters (``*_next``, ``fail_jobs``) are consumed one per request/job; a negative value
    means "forever".
    """

    fail_next: int = 0  # force the next N /api requests to fail_status
    fail_status: int = 500  # 429, 500, 502, 504, ...
    delay_next: int = 0  # delay the next N /api requests by delay_seconds (while in flight)
    delay_seconds: float = 0.0
    fault_path: str = ""  # only requests whose path starts with this get fail/delay faults
    concurrency_limit: int = 5  # in-flight /api requests per project, else 429
    poll_inprogress: int = 1  # "JOB INPROGRESS" answers before "JOB COMPLETED"
    fail_jobs: int = 0  # next N cohort requests end as "JOB FAILED"
    redirect: str = "large"  # /file answer: "never" (200), "large" (302 above threshold), "always"
    redirect_threshold: int = 1000  # members
    s3_ttl: float = 60.0  # seconds a minted /s3 link stays valid
    s3_origin: str = ""  # scheme://host:port the /file redirect points to; blank: this server (SSRF tests)
    gzip: bool = False  # gzip cohort files (Content-Encoding: gzip), direct and S3
    export_max_bytes: int = 4 * 1024**3  # estimated export size above which -> 400
    export_bytes_per_event: int = 250  # estimate used for export_max_bytes
    export_timeout_hours: int | None = None  # windows longer than this many hours -> 504
    export_truncate: bool = False  # cut the zip inside its last entry, no central directory
    export_corrupt_member: bool = False  # last zip entry is a broken gzip stream
    export_malformed_lines: int = 0  # non-JSON lines inserted into the first zip entry

    def update(self, changes: Mapping[str, Any]) -> None:
        types = {f.name: f.type for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in types:
                raise ValueError(f"unknown fault {key!r}")
            current = getattr(self, key)
            if value is not None and current is not None and not isinstance(value, type(current)):
                if isinstance(current, float) and isinstance(value, int):
                    value = float(value)
                else:
                    raise ValueError(f"fault {key!r} expects {types[key]}")
            setattr(self, key, value)
        if self.redirect not in ("never", "large", "always"):
            raise ValueError("redirect must be never|large|always")


@dataclass
class Cohort:
    """A cohort: generated from a ``CohortSpec`` or given as explicit member rows."""

    id: str
    name: str
    spec: CohortSpec | None = None
    members: list[dict[str, Any]] | None = None
    description: str = ""
    owners: list[str] = field(default_factory=lambda: ["owner@example.com"])
    published: bool = True
    archived: bool = False
    last_computed: int = 0
    _counted: tuple[CohortSpec, int] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        if self.members is not None:
            return len(self.members)
        if self._counted is None or self._counted[0] is not self.spec:  # counting a drift is not free
            self._counted = (self.spec, self.spec.count())
        return self._counted[1]

    def columns(self, pop: Population, props: bool, prop_keys: Sequence[str]) -> list[str]:
        if self.members is not None:
            fixed = {"amplitude_id", "user_id", "device_id"}
            custom = list(dict.fromkeys(k for m in self.members for k in m if k not in fixed))
        else:
            custom = list(pop.user_properties if self.spec.user_properties is None else self.spec.user_properties)
        standard = set(csv_columns(True))
        return csv_columns(props, prop_keys, [c for c in custom if c not in standard])

    def csv_chunks(self, pop: Population, columns: Sequence[str]) -> Iterator[str]:
        if self.members is not None:
            return members_csv(self.members, columns)
        return generated_csv(pop, self.spec, columns)

    def to_json(self, app_id: int) -> dict[str, Any]:
        return {
            "appId": app_id,
            "archived": self.archived,
            "chart_id": None,
            "createdAt": self.last_computed - 86_400,
            "definition": {
                "version": 3,
                "cohortType": "UNIQUES",
                "countGroup": {"name": "User", "is_computed": False},
                "referenceFrameTimeParams": {},
                "andClauses": [],
            },
            "description": self.description,
            "edit_id": None,
            "finished": True,
            "hidden": False,
            "id": self.id,
            "is_official_content": False,
            "is_predictive": False,
            "lastComputed": self.last_computed,
            "lastMod": self.last_computed,
            "last_viewed": None,
            "location_id": None,
            "metadata": None,
            "name": self.name,
            "owners": list(self.owners),
            "popularity": None,
            "published": self.published,
            "shortcut_ids": [],
            "size": self.size,
            "syncMetadata": [],
            "type": "redshift",
            "view_count": None,
            "viewers": [],
        }


@dataclass
class Project:
    api_key: str
    secret_key: str
    project_id: int
    events: EventSource | None
    cohorts: dict[str, Cohort] = field(default_factory=dict)
    inflight: int = 0


@dataclass
class _Job:
    request_id: str
    project: Project
    cohort: Cohort  # snapshot taken at request time, like Amplitude computing the file then
    columns: list[str]
    polls_left: int
    fails: bool


class AmplitudeSandbox:
    """All state of the fake: projects, cohorts, jobs, S3 links, faults and request counts."""

    def __init__(
        self,
        api_key: str | None = DEFAULT_API_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        project_id: int = DEFAULT_PROJECT_ID,
        *,
        seed: int = 0,
        anonymous_fraction: float = 0.02,
        events: EventSource | None = None,
        clock: Any = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.population = Population(seed, anonymous_fraction)
        self.faults = Faults()
        self.clock = clock  # replaceable in tests (S3 expiry, lastComputed)
        self.projects: dict[tuple[str, str], Project] = {}
        self.jobs: dict[str, _Job] = {}
        self.s3_links: dict[str, tuple[_Job, float]] = {}
        self.requests: Counter[str] = Counter()
        self.responses: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self._rng = random.Random(seed)
        self.project = self.add_project(api_key, secret_key, project_id, events) if api_key else None

    # --- setup helpers ------------------------------------------------------------------
    def add_project(self, api_key: str, secret_key: str, project_id: int, events: EventSource | None = None) -> Project:
        if events is None:  # a rolling week of data ending ~now
            now = datetime.fromtimestamp(self.clock(), UTC).replace(minute=0, second=0, microsecond=0)
            events = EventSource(start=now - timedelta(days=7), seed=project_id)
        project = Project(api_key, secret_key, project_id, events)
        with self.lock:
            self.projects[(api_key, secret_key)] = project
        return project

    def add_cohort(
        self,
        cohort_id: str | None = None,
        name: str = "Sandbox cohort",
        *,
        size: int | None = None,
        members: Iterable[Mapping[str, Any]] | None = None,
        start: int = 0,
        churn: float = 0.05,
        user_properties: Mapping[str, Sequence[str]] | None = None,
        repeat_every: int = 0,
        project: Project | None = None,
        **attrs: Any,
    ) -> Cohort:
        """Add a generated cohort (``size`` users from user number ``start``) or explicit rows.

        Explicit rows are dicts with ``amplitude_id``, ``user_id`` and any user properties.
        ``repeat_every`` (generated cohorts): every n-th member's row appears twice in the file.
        ``attrs`` sets Cohort fields such as ``description``, ``owners``, ``archived``.
        """
        if (size is None) == (members is None):
            raise ValueError("give exactly one of size= or members=")
        cohort_id = cohort_id or "".join(self._rng.choices("0123456789abcdefghijklmnopqrstuvwxyz", k=7))
        spec = (
            None
            if size is None
            else CohortSpec(
                size,
                start,
                seed=self._rng.randrange(1 << 30),
                churn=churn,
                user_properties=user_properties,
                repeat_every=repeat_every,
            )
        )
        cohort = Cohort(
            cohort_id,
            name,
            spec,
            None if members is None else [dict(m) for m in members],
            last_computed=int(self.clock()),
            **attrs,
        )
        with self.lock:
            (project or self.project).cohorts[cohort_id] = cohort
        return cohort

    def set_cohort_members(
        self,
        cohort_id: str,
        members: Iterable[Mapping[str, Any]] | None = None,
        *,
        version: int | None = None,
        project: Project | None = None,
    ) -> Cohort:
        """Replace explicit members, or move a generated cohort to drift ``version``."""
        with self.lock:
            cohort = (project or self.project).cohorts[cohort_id]
            if members is not None:
                cohort.members, cohort.spec = [dict(m) for m in members], None
            elif version is not None and cohort.spec is not None:
                cohort.spec = dataclasses.replace(cohort.spec, version=version)
            else:
                raise ValueError("give members=, or version= for a generated cohort")
            cohort.last_computed = int(self.clock())
            return cohort

    def drift_cohort(self, cohort_id: str, steps: int = 1, project: Project | None = None) -> Cohort:
        cohort = (project or self.project).cohorts[cohort_id]
        return self.set_cohort_members(cohort_id, version=cohort.spec.version + steps, project=project)

    def set_faults(self, **changes: Any) -> Faults:
        with self.lock:
            self.faults.update(changes)
            return self.faults

    def reset_faults(self) -> Faults:
        with self.lock:
            self.faults = Faults()
            return self.faults

    # --- counters -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "responses": {ep: {str(k): v for k, v in c.items()} for ep, c in self.responses.items()},
                "inflight": {str(p.project_id): p.inflight for p in self.projects.values()},
            }

    def request_count(self, endpoint: str) -> int:
        """Requests seen by endpoint: cohorts, cohort_request, cohort_status, cohort_file, s3, export."""
        with self.lock:
            return self.requests[endpoint]

    def reset_stats(self) -> None:
        with self.lock:
            self.requests.clear()
            self.responses.clear()

    # --- request-time helpers (used by the handler) ---------------------------------------
    def authenticate(self, header: str | None) -> Project | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            key, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self.projects.get((key, secret))

    def acquire(self, project: Project) -> bool:
        with self.lock:
            if project.inflight >= self.faults.concurrency_limit:
                return False
            project.inflight += 1
            return True

    def release(self, project: Project) -> None:
        with self.lock:
            project.inflight -= 1

    def take_fault(self, path: str) -> tuple[int | None, float]:
        """Consume one forced-status/delay fault for this request: (status or None, delay)."""
        with self.lock:
            f = self.faults
            if not path.startswith(f.fault_path):
                return None, 0.0
            delay, status = 0.0, None
            if f.delay_next:
                f.delay_next -= f.delay_next > 0
                delay = f.delay_seconds
            if f.fail_next:
                f.fail_next -= f.fail_next > 0
                status = f.fail_status
            return status, delay

    def new_job(self, project: Project, cohort: Cohort, columns: list[str]) -> _Job:
        with self.lock:
            fails = self.faults.fail_jobs != 0
            self.faults.fail_jobs -= self.faults.fail_jobs > 0
            job = _Job(secrets.token_hex(12), project, copy.copy(cohort), columns, self.faults.poll_inprogress, fails)
            self.jobs[job.request_id] = job
            return job

    def mint_s3_link(self, job: _Job) -> str:
        with self.lock:
            now = self.clock()
            for token in [t for t, (_, exp) in self.s3_links.items() if exp < now - 3600]:
                del self.s3_links[token]  # forget long-dead links so the dict stays small
            token = secrets.token_urlsafe(24)
            self.s3_links[token] = (job, now + self.faults.s3_ttl)
            return token


class _ChunkedWriter:
    """File-like sink writing HTTP/1.1 chunks (buffered); drops bytes past ``limit``."""

    def __init__(self, wfile: BinaryIO, buffer_size: int = 1 << 16) -> None:
        self.wfile, self.buffer_size, self.buf = wfile, buffer_size, bytearray()
        self.written = 0
        self.limit: int | None = None

    def write(self, data: bytes) -> int:
        size = len(data)
        if self.limit is not None:
            data = data[: max(0, self.limit - self.written)]
        self.written += len(data)
        self.buf += data
        if len(self.buf) >= self.buffer_size:
            self.flush()
        return size  # report everything as written: truncation must be invisible to zipfile

    def flush(self) -> None:
        if self.buf:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(self.buf), bytes(self.buf)))
            self.buf.clear()

    def finish(self) -> None:
        self.flush()
        self.wfile.write(b"0\r\n\r\n")


class _Corrupter:
    """Wraps a sink and flips a few bytes early in the deflate stream -> broken gzip member."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.pos = raw, 0

    def write(self, data: bytes) -> int:
        buf = bytearray(data)
        for i in range(max(0, 20 - self.pos), min(len(buf), 36 - self.pos)):
            buf[i] ^= 0xFF
        self.pos += len(buf)
        return self.raw.write(bytes(buf))

    def flush(self) -> None:
        pass


_DONE = object()


def _prefetched(items: Iterable[bytes], depth: int = 4) -> Iterator[bytes]:
    """Produce ``items`` in a helper thread, at most ``depth`` ahead.

    Generating export lines is pure Python while gzip (zlib) releases the GIL, so overlapping
    the two nearly doubles export throughput. The producer gives up once the consumer is
    closed (e.g. the client disconnected), so no thread is left blocked.
    """
    q: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(item, timeout=0.1)
                return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except Exception as exc:  # noqa: BLE001 - re-raised in the consumer thread
            put(exc)

    threading.Thread(target=produce, name="export-prefetch", daemon=True).start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()


def _encoded(lines: Iterator[str], batch: int = 1000) -> Iterator[bytes]:
    while chunk := list(itertools.islice(lines, batch)):
        yield ("\n".join(chunk) + "\n").encode()


def _with_bad_lines(lines: Iterator[str], count: int) -> Iterator[str]:
    for i, line in enumerate(lines):
        if i % 3 == 1 and count > 0:
            yield _BAD_LINES[count % len(_BAD_LINES)]
            count -= 1
        yield line
    yield from itertools.islice(itertools.cycle(_BAD_LINES), count)


def _parse_hour(value: str | None) -> datetime:
    return datetime.strptime(value or "", "%Y%m%dT%H").replace(tzinfo=UTC)


_ROUTES: list[tuple[str, re.Pattern[str], str, str, bool]] = [
    (method, re.compile(pattern), endpoint, handler, api)
    for method, pattern, endpoint, handler, api in (
        ("GET", r"/api/3/cohorts", "cohorts", "_list_cohorts", True),
        ("GET", r"/api/5/cohorts/request/([^/]+)/file", "cohort_file", "_cohort_file", True),
        ("GET", r"/api/5/cohorts/request/([^/]+)", "cohort_request", "_request_cohort", True),
        ("GET", r"/api/5/cohorts/request-status/([^/]+)", "cohort_status", "_cohort_status", True),
        ("GET", r"/api/2/export", "export", "_export", True),
        ("GET", r"/s3/([^/]+)", "s3", "_s3", False),
        ("GET", r"/_sandbox/stats", "stats", "_stats", False),
        ("GET", r"/_sandbox/faults", "faults", "_get_faults", False),
        ("POST", r"/_sandbox/faults", "faults", "_post_faults", False),
    )
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming
    server_version = "AmplitudeSandbox/1.0"
    # Headers and body are separate writes: with Nagle on, a small answer waits ~40 ms for the
    # client's delayed ACK (see partners/server.py). Real Amplitude does not add that delay.
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections do not pin threads forever
    endpoint = "unknown"  # class defaults: stdlib send_error() may run before _dispatch
    headers_sent = False
    server: _SandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and benchmarks would drown in access logs

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def send_response(self, code: int, message: str | None = None) -> None:
        with self.sb.lock:
            self.sb.responses[self.endpoint][code] += 1
        self.headers_sent = True
        super().send_response(code, message)

    @property
    def sb(self) -> AmplitudeSandbox:
        return self.server.sandbox

    def _dispatch(self, method: str) -> None:
        self.endpoint, self.headers_sent = "unknown", False
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        try:
            for route_method, pattern, endpoint, name, api in _ROUTES:
                match = pattern.fullmatch(url.path)
                if match and route_method == method:
                    self.endpoint = endpoint
                    with self.sb.lock:
                        self.sb.requests[endpoint] += 1
                    if api:
                        return self._api(url.path, getattr(self, name), match.groups())
                    return getattr(self, name)(*match.groups())
            self.close_connection = True  # an unread request body must not poison keep-alive
            self._error(404, f"No route for {method} {url.path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # client went away mid-stream
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: answer 500, keep serving
            if not self.headers_sent:
                self._error(500, f"sandbox error: {exc!r}")
            self.close_connection = True

    def _api(self, path: str, handler: Any, args: Sequence[str]) -> None:
        project = self.sb.authenticate(self.headers.get("Authorization"))
        if project is None:
            return self._error(403, "Invalid API/Secret Key combination")
        if not self.sb.acquire(project):
            limit = self.sb.faults.concurrency_limit
            return self._error(429, f"Too many concurrent requests. Limit is {limit} for project {project.project_id}.")
        try:
            status, delay = self.sb.take_fault(path)
            if delay:
                time.sleep(delay)
            if status:
                return self._error(status, f"Injected fault: HTTP {status}")
            handler(project, *args)
        finally:
            self.sb.release(project)

    # --- response helpers ---------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        """Amplitude REST error body: {"error": {http_code, type, message, metadata}}."""
        error = {
            "http_code": status,
            "type": _ERROR_TYPES.get(status, "error"),
            "message": message,
            "metadata": {"details": message},
        }
        self._json(status, {"error": error})

    def _s3_error(self, status: int, code: str, message: str, extra: str = "") -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"{extra}<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
        )
        self._send(status, body.encode(), "application/xml")

    def _start_chunked(self, status: int, content_type: str, headers: Mapping[str, str]) -> _ChunkedWriter:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        return _ChunkedWriter(self.wfile)

    # --- Behavioral Cohorts API -----------------------------------------------------------
    def _list_cohorts(self, project: Project) -> None:
        with self.sb.lock:
            cohorts = list(project.cohorts.values())
        self._json(200, {"cohorts": [c.to_json(project.project_id) for c in cohorts]})

    def _request_cohort(self, project: Project, cohort_id: str) -> None:
        cohort = project.cohorts.get(cohort_id)
        if cohort is None:
            return self._error(404, f"Cohort {cohort_id} not found")
        props = self.query.get("props", ["0"])[-1] == "1"
        columns = cohort.columns(self.sb.population, props, self.query.get("propKeys", []))
        job = self.sb.new_job(project, cohort, columns)
        self._json(202, {"request_id": job.request_id, "cohort_id": cohort_id})

    def _job(self, project: Project, request_id: str) -> _Job | None:
        job = self.sb.jobs.get(request_id)
        return job if job is not None and job.project is project else None

    def _cohort_status(self, project: Project, request_id: str) -> None:
        job = self._job(project, request_id)
        if job is None:
            return self._error(404, f"Request {request_id} not found")
        with self.sb.lock:
            in_progress = job.polls_left > 0
            job.polls_left -= in_progress
        body = {"request_id": request_id, "cohort_id": job.cohort.id}
        if in_progress:
            return self._json(202, {**body, "async_status": "JOB INPROGRESS"})
        self._json(200, {**body, "async_status": "JOB FAILED" if job.fails else "JOB COMPLETED"})

    def _cohort_file(self, project: Project, request_id: str) -> None:
        job = self._job(project, request_id)
        if job is None:
            return self._error(404, f"Request {request_id} not found")
        if job.polls_left > 0 or job.fails:
            return self._error(400, f"Request {request_id} is not completed")
        f = self.sb.faults
        if f.redirect == "always" or (f.redirect == "large" and job.cohort.size > f.redirect_threshold):
            token = self.sb.mint_s3_link(job)
            query = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={int(f.s3_ttl)}&X-Amz-Signature={token[:16]}"
            host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
            origin = f.s3_origin or f"http://{host}"
            self._send(302, b"", "text/plain", {"Location": f"{origin}/s3/{token}?{query}"})
            return
        self._stream_csv(job, "text/csv; charset=utf-8", {})

    def _s3(self, token: str) -> None:
        if "Authorization" in self.headers:  # S3 rejects a forwarded Basic auth header
            return self._s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                "query parameter, Signature query string parameter or the Authorization header "
                "should be specified",
                "<ArgumentName>Authorization</ArgumentName>",
            )
        with self.sb.lock:
            job, expires = self.sb.s3_links.get(token, (None, 0.0))
        if job is None:
            return self._s3_error(403, "AccessDenied", "Access Denied")
        if self.sb.clock() > expires:
            stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return self._s3_error(403, "AccessDenied", "Request has expired", f"<Expires>{stamp}</Expires>")
        self._stream_csv(job, "binary/octet-stream", {"x-amz-request-id": secrets.token_hex(8).upper()})

    def _stream_csv(self, job: _Job, content_type: str, headers: dict[str, str]) -> None:
        """Generate the CSV row batch by row batch into the socket (optionally gzipped)."""
        gz = zlib.compressobj(1, zlib.DEFLATED, 31) if self.sb.faults.gzip else None
        if gz:
            headers["Content-Encoding"] = "gzip"
        out = self._start_chunked(200, content_type, headers)
        for text in job.cohort.csv_chunks(self.sb.population, job.columns):
            data = text.encode()
            out.write(gz.compress(data) if gz else data)
        if gz:
            out.write(gz.flush())
        out.finish()

    # --- Export API ---------------------------------------------------------------------
    def _export(self, project: Project) -> None:
        f, src = self.sb.faults, project.events
        try:
            first, last = _parse_hour(self.query.get("start", [""])[0]), _parse_hour(self.query.get("end", [""])[0])
        except ValueError:
            return self._error(400, "start and end are required, format YYYYMMDDTHH")
        if last < first or last - first > timedelta(days=365):
            return self._error(400, "end must be >= start and the range at most 365 days")
        span_hours = (last - first) // timedelta(hours=1) + 1
        if f.export_timeout_hours is not None and span_hours > f.export_timeout_hours:
            return self._error(504, "Gateway timeout: export is taking too long, use a smaller range")
        hours = src.hours_between(first, last, now=self.sb.clock()) if src else []
        if not hours:
            return self._error(404, "Raw data files were not found.")
        if len(hours) * src.events_per_hour * f.export_bytes_per_event > f.export_max_bytes:
            return self._error(400, "Export size exceeds the 4GB limit. Please shorten the time range.")
        self._stream_zip(project, hours, f)

    def _stream_zip(self, project: Project, hours: list[datetime], f: Faults) -> None:
        """Write the zip (STORED entries of gzip NDJSON) straight into chunked output."""
        pid, src, pop = project.project_id, project.events, self.sb.population
        entries = [(hour, part) for hour in hours for part in range(src.parts(hour))]
        out = self._start_chunked(200, "application/zip", {"Content-Disposition": f'attachment; filename="{pid}.zip"'})
        zf = zipfile.ZipFile(out, "w", zipfile.ZIP_STORED)  # out is unseekable: zipfile streams
        for index, (hour, part) in enumerate(entries):
            last = index == len(entries) - 1
            if last and f.export_truncate:
                out.limit = out.written + 100  # keep the entry header, lose the rest + directory
            lines = src.lines(pop, pid, hour, part)
            if index == 0 and f.export_malformed_lines:
                lines = _with_bad_lines(lines, f.export_malformed_lines)
            with zf.open(f"{pid}/{pid}_{hour:%Y-%m-%d}_{hour.hour}#{part}.json.gz", "w") as member:
                sink = _Corrupter(member) if last and f.export_corrupt_member else member
                with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as gz:
                    for data in _prefetched(_encoded(lines)):
                        gz.write(data)
        zf.close()
        out.finish()

    # --- sandbox control ----------------------------------------------------------------
    def _stats(self) -> None:
        self._json(200, self.sb.stats())

    def _get_faults(self) -> None:
        self._json(200, dataclasses.asdict(self.sb.faults))

    def _post_faults(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            changes = json.loads(raw or b"{}")
            if not isinstance(changes, dict):
                raise TypeError("expected a JSON object")
            if changes.pop("reset", False):
                self.sb.reset_faults()
            faults = self.sb.set_faults(**changes)
        except (TypeError, ValueError) as exc:
            return self._error(400, str(exc))
        self._json(200, dataclasses.asdict(faults))


class _SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sandbox: AmplitudeSandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing a keep-alive connection while the handler waits for its next request is
        # normal (the importer is done); anything else is a bug in the fake and is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def start_amplitude_sandbox(
    sandbox: AmplitudeSandbox | None = None, host: str = "127.0.0.1", port: int = 0
) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``sandbox`` in a daemon thread; port 0 picks a free port. Returns (server, base_url)."""
    server = _SandboxServer((host, port), sandbox or AmplitudeSandbox())
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="amplitude-sandbox", daemon=True
    ).start()
    bound_host, bound_port = server.server_address[:2]
    if bound_host in ("0.0.0.0", "::"):
        bound_host = "127.0.0.1"
    return server, f"http://{bound_host}:{bound_port}"


def stop_amplitude_sandbox(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@dataclass
class RunningSandbox:
    server: ThreadingHTTPServer
    base_url: str
    sandbox: AmplitudeSandbox

    @property
    def auth(self) -> tuple[str, str]:
        """(api_key, secret_key) of the default project, ready for ``requests``' ``auth=``."""
        project = self.sandbox.project
        return project.api_key, project.secret_key


@contextlib.contextmanager
def running_amplitude_sandbox(
    sandbox: AmplitudeSandbox | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSandbox]:
    server, base_url = start_amplitude_sandbox(sandbox, host, port)
    try:
        yield RunningSandbox(server, base_url, server.sandbox)
    finally:
        stop_amplitude_sandbox(server)


_DEMO_NAMES = ("Power Users", "Churn Risk", "New Sign-ups", "Cart Abandoners", "Premium Trial", "Dormant Listeners")


def build_demo_sandbox(
    api_key: str = DEFAULT_API_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    cohorts: int = 3,
    members: int = 5000,
    events_days: int = 2,
    events_per_hour: int = 500,
    seed: int = 0,
) -> AmplitudeSandbox:
    """A sandbox with ``cohorts`` overlapping generated cohorts and ``events_days`` of events."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    lag = 2
    events = EventSource(
        start=now - timedelta(hours=events_days * 24 + lag),
        hours=events_days * 24,
        events_per_hour=events_per_hour,
        users=max(members * 2, 1),
        seed=seed,
        lag_hours=lag,
    )
    sandbox = AmplitudeSandbox(api_key, secret_key, seed=seed, events=events)
    for i in range(cohorts):
        name = _DEMO_NAMES[i % len(_DEMO_NAMES)] + (f" {i // len(_DEMO_NAMES) + 1}" if i >= len(_DEMO_NAMES) else "")
        sandbox.add_cohort(name=name, size=members, start=i * members // 2, description=f"Sandbox cohort #{i + 1}")
    return sandbox


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Amplitude Cohorts + Export API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument("--cohorts", type=int, default=3)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--events-days", type=int, default=2)
    parser.add_argument("--events-per-hour", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sandbox = build_demo_sandbox(
        args.api_key, args.secret_key, args.cohorts, args.members, args.events_days, args.events_per_hour, args.seed
    )
    server, base_url = start_amplitude_sandbox(sandbox, args.host, args.port)
    print(f"Amplitude sandbox at {base_url}")
    print(f"  api key: {args.api_key}  secret key: {args.secret_key}  project id: {sandbox.project.project_id}")
    for cohort in sandbox.project.cohorts.values():
        print(f"  cohort {cohort.id}: {cohort.name} ({cohort.size} members)")
    print(f"  stats: {base_url}/_sandbox/stats   faults: POST JSON to {base_url}/_sandbox/faults")
    print("Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(0.5)  # short: a Ctrl-C landing on a server thread is seen at the next wake-up
    except KeyboardInterrupt:
        pass
    finally:
        stop_amplitude_sandbox(server)


if __name__ == "__main__":
    main()
