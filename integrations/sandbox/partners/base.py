"""Shared base for the fake partners: request log, fault injection, /_sandbox control endpoints.

Deliberately stdlib-only (no Django) so the same fakes serve pytest, benchmarks and the demo.
Subclasses implement ``route(req) -> Reply`` and may override the small hooks below; the HTTP
plumbing lives in server.py.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

MB = 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: Any = None  # parsed JSON, form dict, or None
    body_error: str | None = None  # set when a non-empty body could not be parsed
    # Returns True when the client hung up (set by the server). A real partner behind a proxy does
    # not apply a request whose client disconnected while it was queued; neither do the fakes.
    client_gone: Any = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, token = (self.header("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(token).decode().partition(":")
        except ValueError:
            return None
        return user, password


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text, bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Faults:
    """Knobs shared by every fake; all settable at runtime via set_faults() or POST /_sandbox/faults."""

    script: deque = field(default_factory=deque)  # next-N steps: {"status","headers","body","delay","drop"}
    rate: float = 0.0  # probability of answering rate_status instead of the real response
    rate_status: int = 429
    rate_headers: dict = field(default_factory=lambda: {"Retry-After": "1"})
    latency: float = 0.0  # seconds added to every call (keeps requests in flight for concurrency tests)
    max_body_bytes: int | None = None  # 413 above; None = unlimited
    concurrency_cap: int | None = None  # in-flight requests above -> 429; None = unlimited


class FakePartner:
    kind = "base"
    default_max_body: int | None = None
    default_concurrency_cap: int | None = None
    concurrency_headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}

    def __init__(
        self,
        *,
        max_body_bytes: int | None = None,
        concurrency_cap: int | None = None,
        latency: float = 0.0,
        seed: int = 0,
        history: int = 100_000,
        record_bodies: bool = True,
    ) -> None:
        # None means "partner default"; 0 means "no limit".
        body = self.default_max_body if max_body_bytes is None else max_body_bytes
        cap = self.default_concurrency_cap if concurrency_cap is None else concurrency_cap
        self._defaults = {"max_body_bytes": body or None, "concurrency_cap": cap or None, "latency": latency}
        self.seed, self.record_bodies = seed, record_bodies
        self.lock = threading.RLock()  # route() runs under it, so partners need no locking of their own
        self._log: deque[dict] = deque(maxlen=history)
        self._stop = threading.Event()
        self.in_flight: Counter[str] = Counter()  # survives reset(): requests may be mid-flight
        self._reset_base()
        self.reset_state()

    # ---- hooks for partners ---------------------------------------------------------------
    def route(self, req: Request) -> Reply:
        raise NotImplementedError

    def reset_state(self) -> None:
        """Clear partner data (lists, profiles, ...)."""

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def concurrency_slot(self, req: Request) -> tuple[str, int | None]:
        """(bucket, cap) a request counts against; partners override for per-account/per-endpoint caps."""
        return "", self.faults.concurrency_cap

    def summary(self) -> dict:
        return {}

    # ---- python API -----------------------------------------------------------------------
    @property
    def requests(self) -> list[dict]:
        return list(self._log)

    def find(self, path: str | None = None, method: str | None = None) -> list[dict]:
        return [
            r
            for r in self._log
            if (not path or r["path"].startswith(path)) and (not method or r["method"] == method.upper())
        ]

    def set_faults(self, **changes: Any) -> dict:
        with self.lock:
            for key, value in changes.items():
                if key == "seed":
                    self.rng.seed(value)
                elif key == "script":
                    self.faults.script = deque(dict(step) for step in value or [])
                elif key in Faults.__dataclass_fields__:
                    setattr(self.faults, key, value)
                else:
                    raise ValueError(f"unknown fault knob: {key}")
            return self.fault_snapshot()

    def fault_snapshot(self) -> dict:
        snap = asdict(self.faults)
        snap["script"] = list(self.faults.script)
        return snap

    def reset(self) -> None:
        """Forget requests, counters and partner data; faults go back to the constructor's values."""
        with self.lock:
            self._reset_base()
            self.reset_state()

    def stats(self) -> dict:
        with self.lock:
            return {
                "kind": self.kind,
                "recorded": len(self._log),
                "in_flight": sum(self.in_flight.values()),
                **self.counters,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                **self.summary(),
            }

    def close(self) -> None:
        self._stop.set()  # wakes handlers sleeping on injected delays so shutdown is quick

    def _reset_base(self) -> None:
        self.faults = Faults(**self._defaults)
        self.rng = random.Random(self.seed)
        self._log.clear()
        self.by_status: Counter[int] = Counter()
        self.counters = {"total": 0, "faults_injected": 0, "concurrency_rejections": 0, "max_in_flight": 0}

    # ---- request pipeline -----------------------------------------------------------------
    def handle(self, req: Request, too_big: bool) -> Reply | None:
        """Returns None to drop the connection without answering."""
        if req.path.startswith("/_sandbox/"):
            return self._control(req)
        entry = {
            "time": time.time(),
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": req.headers,
            "size": len(req.raw),
            "status": None,
            "body": (req.body if req.body_error is None else req.raw.decode("utf-8", "replace"))
            if self.record_bodies
            else None,
        }
        with self.lock:
            self._log.append(entry)
            self.counters["total"] += 1
        reply = self.fault_reply(413, "Request body too large") if too_big else self._with_slot(req)
        entry["status"] = reply.status if reply else None
        with self.lock:
            self.by_status[entry["status"] or 0] += 1
        return reply

    def fault_reply(
        self, status: int, message: str | None = None, headers: dict | None = None, body: Any = None
    ) -> Reply:
        text = message or HTTPStatus(status).phrase
        return Reply(status, self.error_body(status, text) if body is None else body, dict(headers or {}))

    def _with_slot(self, req: Request) -> Reply | None:
        key, cap = self.concurrency_slot(req)
        with self.lock:
            if cap is not None and self.in_flight[key] >= cap:
                self.counters["concurrency_rejections"] += 1
                return self.fault_reply(429, "Too many concurrent requests", self.concurrency_headers)
            self.in_flight[key] += 1
            self.counters["max_in_flight"] = max(self.counters["max_in_flight"], sum(self.in_flight.values()))
        try:
            return self._run(req)
        finally:
            with self.lock:
                self.in_flight[key] -= 1

    def _run(self, req: Request) -> Reply | None:
        with self.lock:
            step = self.faults.script.popleft() if self.faults.script else None
            if step is None and self.faults.rate and self.rng.random() < self.faults.rate:
                step = {"status": self.faults.rate_status, "headers": dict(self.faults.rate_headers)}
            if step is not None:
                self.counters["faults_injected"] += 1
            delay = self.faults.latency + float((step or {}).get("delay", 0))
        if delay:
            self._stop.wait(delay)
        if step and step.get("drop"):
            return None
        if delay and req.client_gone is not None and req.client_gone():
            return None
        if step and "status" in step:
            return self.fault_reply(int(step["status"]), step.get("message"), step.get("headers"), step.get("body"))
        try:
            with self.lock:
                return self.route(req)
        except Exception as exc:  # noqa: BLE001 - a bug in a fake must surface as a 500, not a dropped socket
            return self.fault_reply(500, f"sandbox error: {exc!r}")

    def _control(self, req: Request) -> Reply:
        op = (req.method, req.path.rstrip("/"))
        if op == ("GET", "/_sandbox/requests"):
            limit = int(req.query["limit"]) if req.query.get("limit", "").isdigit() else 100
            hits = self.find(req.query.get("path"), req.query.get("method"))
            return Reply(200, {"count": len(hits), "requests": hits[-limit:] if limit else []})
        if op == ("GET", "/_sandbox/stats"):
            return Reply(200, self.stats())
        if op == ("GET", "/_sandbox/faults"):
            return Reply(200, self.fault_snapshot())
        if op == ("POST", "/_sandbox/faults"):
            try:
                if req.body_error or not isinstance(req.body, dict):
                    raise ValueError(req.body_error or "expected a JSON object of fault knobs")
                return Reply(200, self.set_faults(**req.body))
            except (TypeError, ValueError) as exc:
                return Reply(400, {"error": str(exc)})
        if op == ("POST", "/_sandbox/reset"):
            self.reset()
            return Reply(200, {"reset": True})
        return Reply(404, {"error": "unknown sandbox control endpoint"})
