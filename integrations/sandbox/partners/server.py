"""HTTP plumbing for the fakes: stdlib ThreadingHTTPServer with daemon threads, body parsing."""

from __future__ import annotations

import json
import select
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .base import FakePartner, Request


def parse_request(method: str, target: str, headers: dict[str, str], raw: bytes) -> Request:
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    req = Request(method, url.path, query, headers, raw)
    if not raw:
        return req
    try:
        if "x-www-form-urlencoded" in headers.get("content-type", ""):
            req.body = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        else:
            req.body = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        req.body_error = f"invalid body: {exc}"
    return req


def _peer_closed(sock: socket.socket) -> bool:
    """True when the client closed its end (readable with EOF) while we were delaying the answer."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: benchmarks would otherwise pay a TCP handshake per call
    # The status line + headers and the body go out in two writes. With Nagle on, the body waits for
    # the client's ACK of the headers, which the client delays (~40 ms on Linux): every call would
    # take >= 40 ms whatever the client does. Real partners do not add that; neither may the fakes.
    disable_nagle_algorithm = True
    server: SandboxServer

    def _serve(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        limit = None if self.path.startswith("/_sandbox/") else fake.faults.max_body_bytes
        too_big = limit is not None and length > limit
        raw = b""
        if too_big:  # drain, so the client sees our 413 instead of a reset while it is still sending
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        elif length:
            raw = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = parse_request(self.command, self.path, headers, raw)
        req.client_gone = lambda: _peer_closed(self.connection)
        reply = fake.handle(req, too_big)
        if reply is None:
            self.close_connection = True
            return
        body = reply.body
        ctype = "application/json"
        if isinstance(body, str):
            body, ctype = body.encode(), "text/plain; charset=utf-8"
        elif not isinstance(body, bytes):
            body = b"" if body is None else json.dumps(body).encode()
        self.send_response(reply.status)
        if "content-type" not in {k.lower() for k in reply.headers}:
            self.send_header("Content-Type", ctype)
        for name, value in reply.headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log replaces stderr noise


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # bursts of parallel clients (concurrency tests, benchmarks) must not stall in accept

    def __init__(self, address: tuple[str, int], fake: FakePartner) -> None:
        self.fake = fake
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out on injected delays close sockets under us; that is expected

    def stop(self) -> None:
        self.fake.close()
        self.shutdown()
        self.server_close()
