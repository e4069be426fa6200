"""The production start: the one place that says how each process of the console is started.

The Docker image's entrypoint, compose.yaml and the guides all call it, so they cannot drift:

    python -m config.start web [GUNICORN OPTIONS]           the console, admin and APIs (gunicorn)
    python -m config.start worker [QUEUE,...] [OPTIONS]     a Celery worker (default: every queue)
    python -m config.start beat [OPTIONS]                   the scheduler: exactly one per deployment
    python -m config.start migrate                          migrations: once per release, before the rest
    python -m config.start check web|worker [QUEUE,...]|beat   exit 0 when that process is healthy

`web` listens on $BIND_ADDRESS:$PORT (default 0.0.0.0:8000) with $WEB_CONCURRENCY gunicorn worker
processes (default 2). Options given after the process name are appended to ours. The process replaces this
one (exec), so signals from the container runtime or a supervisor reach gunicorn or Celery directly.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import django
from django.conf import settings

from config.celery import QUEUES, app
from config.scheduler import last_tick

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ("web", "worker", "beat", "migrate")
BEAT_STALE_SECONDS = 180  # three missed ticks


def _queues(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split `worker [QUEUE,...] [OPTIONS]` into the queues and the options."""
    if args and not args[0].startswith("-"):
        queues = [q.strip() for q in args[0].split(",") if q.strip()]
        unknown = sorted(set(queues) - set(QUEUES))
        if unknown or not queues:
            raise SystemExit(f"config.start: unknown queue {', '.join(unknown) or '(none)'}; choose from {QUEUES}")
        return queues, list(args[1:])
    return list(QUEUES), list(args)


def worker_name(queues: Sequence[str]) -> str:
    """The Celery node name of a worker for `queues` on this host: what `check worker` pings."""
    return f"{'-'.join(queues)}@{socket.gethostname()}"


def command(process: str, args: Sequence[str] = ()) -> list[str]:
    """The argv that starts `process`."""
    python = sys.executable
    if process == "web":
        bind = f"{os.environ.get('BIND_ADDRESS', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
        workers = os.environ.get("WEB_CONCURRENCY", "2")
        return [python, "-m", "gunicorn", "config.wsgi:application", "--bind", bind, "--workers", workers,
                "--access-logfile", "-", *args]  # fmt: skip
    if process == "worker":
        queues, options = _queues(args)
        return [python, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(queues), "-n", worker_name(queues),
                *options]  # fmt: skip
    if process == "beat":
        return [python, "-m", "celery", "-A", "config", "beat", *args]
    if process == "migrate":
        return [python, str(ROOT / "manage.py"), "migrate", "--noinput", *args]
    raise SystemExit(f"config.start: unknown process {process!r}; choose from {', '.join(PROCESSES)} or check")


def check(process: str, args: Sequence[str] = ()) -> str | None:
    """None when `process` on this host is healthy, else what is wrong (for container health checks)."""
    if process == "web":
        host = next((h.lstrip(".") for h in settings.ALLOWED_HOSTS if h != "*"), "localhost")
        address = os.environ.get("BIND_ADDRESS", "0.0.0.0")
        address = "127.0.0.1" if address in ("0.0.0.0", "") else f"[{address}]" if ":" in address else address
        request = urllib.request.Request(
            f"http://{address}:{os.environ.get('PORT', '8000')}/healthz", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                return None
        except urllib.error.HTTPError as error:
            # /healthz answers 503 when the database, Redis or the workers are down: this process
            # itself is up. Anything else (400: ALLOWED_HOSTS, 500) is a broken web process.
            return None if error.code == 503 else f"/healthz answered HTTP {error.code}"
        except OSError as error:
            return f"/healthz did not answer: {error}"
    if process == "worker":
        name = worker_name(_queues(args)[0])
        replies = app.control.ping(destination=[name], timeout=5.0)
        return None if replies else f"worker {name} did not answer a ping within 5 s"
    if process == "beat":
        tick = last_tick()
        if tick is None:
            return "no scheduler tick recorded yet"
        age = time.time() - tick
        return None if age < BEAT_STALE_SECONDS else f"the last scheduler tick was {age:.0f} s ago"
    return f"cannot check {process!r}; choose from web, worker, beat"


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    process, args = argv[0], list(argv[1:])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if process == "check":
        django.setup()
        problem = check(args[0], args[1:]) if args else "say which process: web, worker or beat"
        if problem:
            print(f"unhealthy: {problem}", file=sys.stderr)
            return 1
        return 0
    argv_to_run = command(process, args)
    os.chdir(ROOT)
    os.execv(argv_to_run[0], argv_to_run)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
