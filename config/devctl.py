"""The work behind `python3 dev.py <command>`; runs inside .venv (dev.py re-executes itself there).

    run       the demo as production runs it (DEBUG off, keys generated once into .data/demo-keys.json,
              collectstatic): embedded servers + migrate + seed_demo, then web/worker/beat, their
              logs in .data/logs/ so the banner (login, inbound key) stays on screen
    test      embedded servers (under .data/test) + pytest ARGS...; exits with pytest's code
    services  only the embedded servers; prints the export lines; Ctrl-C stops them
    manage    embedded servers + manage.py ARGS... (e.g. makemigrations --check --dry-run)
    smoke     a production start (DEBUG off, real keys made for the run, collectstatic, gunicorn, worker,
              beat) on its own embedded servers, every page as each role in Chromium, every API list

DATABASE_URL / REDIS_URL, when set, are used as they are and that server is not started.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from config.embedded import EmbeddedServices, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
# Tests get their own cluster and Redis, so `dev.py test` never touches a running demo.
TEST_DATA = DATA / "test"

STOP_TIMEOUT = 15.0  # seconds a child gets after SIGTERM before SIGKILL
QUEUES = "inbound,imports,deliveries,default"

_print_lock = threading.Lock()
_COLORS = {"web": "32", "worker": "36", "beat": "35", "seed": "33", "dev.py": "1"}


def say(message: str, name: str = "dev.py") -> None:
    """Print one line with a `name |` prefix (coloured on a terminal)."""
    prefix = f"{name:<6} | "
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        prefix = f"\033[{_COLORS.get(name, '0')}m{prefix}\033[0m"
    with _print_lock:
        for line in message.splitlines() or [""]:
            sys.stdout.write(prefix + line + "\n")
        sys.stdout.flush()


def main(argv: Sequence[str]) -> int:
    """Dispatch `dev.py COMMAND [ARGS...]`; return the process exit code."""
    commands = {
        "run": cmd_run,
        "test": cmd_test,
        "services": cmd_services,
        "manage": cmd_manage,
        "bench": cmd_bench,
        "smoke": cmd_smoke,
    }
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    if argv[0] in ("manage", "bench"):
        # A developer tool: DEBUG=1 gives settings its development secrets and plain-HTTP
        # cookies. (`test` leaves it to config.settings_test.)
        os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # children's lines reach the console at once
    try:
        return commands[argv[0]](list(argv[1:]))
    except KeyboardInterrupt:
        return 130


# -- shared steps -------------------------------------------------------------


def start_services(data_dir: Path) -> EmbeddedServices:
    """Start the servers whose URL is unset and export both URLs to os.environ (children inherit it)."""
    given = {name: os.environ.get(name) or None for name in ("DATABASE_URL", "REDIS_URL")}
    services = EmbeddedServices(data_dir, database_url=given["DATABASE_URL"], redis_url=given["REDIS_URL"])
    started = time.monotonic()
    urls = services.start()
    for name, url in (("DATABASE_URL", urls.database_url), ("REDIS_URL", urls.redis_url)):
        os.environ[name] = url
        origin = "from the environment" if given[name] else f"embedded, data in {_rel(data_dir)}"
        say(f"{name}={url}  ({origin})")
    say(f"services ready in {time.monotonic() - started:.1f}s")
    return services


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def run_foreground(cmd: list[str]) -> int:
    """Run a child that owns the terminal (pytest, manage.py) and return its exit code.

    It stays in our process group, so a Ctrl-C reaches it directly (pytest then prints its
    summary); we ignore SIGINT meanwhile and only forward SIGTERM.
    """
    proc = subprocess.Popen(cmd, cwd=ROOT)
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def wait_for_stop_signal() -> threading.Event:
    """SIGINT/SIGTERM set the returned event instead of raising, so shutdown runs in order."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


# -- commands -----------------------------------------------------------------


CHROMIUM = "/usr/bin/chromium"
PGBOUNCER = "/usr/sbin/pgbouncer"


def _apt_install(package: str, purpose: str) -> None:
    """Install a Debian package when missing and we are allowed to (root with apt-get); otherwise the
    tests that need it skip and say why."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        say(f"{package} not found and cannot be installed here: {purpose} will be skipped")
        return
    say(f"installing Debian's {package} for {purpose} (once) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    if subprocess.call(["apt-get", "install", "-y", "-q", package], **quiet) != 0:
        subprocess.call(["apt-get", "update", "-q"], **quiet)
        if subprocess.call(["apt-get", "install", "-y", "-q", package], **quiet) != 0:
            say(f"apt-get install {package} failed: {purpose} will be skipped")


def ensure_chromium() -> None:
    """Browser tests drive Debian's chromium through Playwright (Playwright's own browser download
    is not possible offline)."""
    if not (os.environ.get("CHROMIUM_PATH") or Path(CHROMIUM).exists()):
        _apt_install("chromium", "the browser tests")


def ensure_pgbouncer() -> None:
    """The PgBouncer tests run the real pooler in transaction mode in front of the test database."""
    if not (shutil.which("pgbouncer") or Path(PGBOUNCER).exists()):
        _apt_install("pgbouncer", "the PgBouncer tests")


def cmd_test(args: list[str]) -> int:
    ensure_chromium()
    ensure_pgbouncer()
    services = start_services(TEST_DATA)
    try:
        return run_foreground([sys.executable, "-m", "pytest", *args])
    finally:
        services.stop()


BENCH_DATA = ROOT / ".data" / "bench"


def cmd_bench(args: list[str]) -> int:
    """`dev.py bench NAME [ARGS]` runs bench/NAME.py against its own embedded servers (or the URLs
    set), after migrating; `dev.py bench` lists the benchmarks."""
    names = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")
    if not args or args[0] not in names:
        say("benchmarks: " + ", ".join(names) + "   (python3 dev.py bench NAME [--size N])")
        return 0 if not args else 2
    services = start_services(BENCH_DATA)
    # The benchmarks' sandboxes listen on 127.0.0.1 (free ports, plain http): the outgoing-request
    # policy refuses both unless allowed.
    os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1")
    os.environ.setdefault("OUTBOUND_ALLOW_HTTP", "1")
    try:
        if subprocess.call(manage_command("migrate", "--noinput", "-v", "0"), cwd=ROOT) != 0:
            return 1
        return run_foreground([sys.executable, "-m", f"bench.{args[0]}", *args[1:]])
    finally:
        services.stop()


def cmd_manage(args: list[str]) -> int:
    services = start_services(DATA)
    try:
        return run_foreground(manage_command(*args))
    finally:
        services.stop()


def cmd_services(args: list[str]) -> int:
    services = start_services(DATA)
    try:
        stop = wait_for_stop_signal()
        say("Servers are up; Ctrl-C stops them. In another shell:")
        # Unprefixed, so they can be copied (or grepped) as they are.
        with _print_lock:
            for name in ("DATABASE_URL", "REDIS_URL"):
                print(f"export {name}={shlex.quote(os.environ[name])}", flush=True)
        while not stop.wait(0.5):  # a timeout: a signal landing on another thread must still wake us
            pass
        say("stopping the servers ...")
        return 0
    finally:
        services.stop()


DEMO_KEYS = DATA / "demo-keys.json"
LOGS = DATA / "logs"


def demo_env() -> dict[str, str]:
    """The demo runs with DEBUG off, as production does (branded error pages, never Django's debug
    page; static files from collectstatic): its secret key and encryption key are generated once
    into .data/demo-keys.json (0600) and kept, so sessions and saved credentials survive a restart."""
    import secrets

    from cryptography.fernet import Fernet

    DATA.mkdir(parents=True, exist_ok=True)
    if DEMO_KEYS.exists():
        keys = json.loads(DEMO_KEYS.read_text())
    else:
        keys = {"SECRET_KEY": secrets.token_urlsafe(50), "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
        fd = os.open(DEMO_KEYS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(keys, out)
    return {
        "DEBUG": "0",
        **keys,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: the TLS-only settings are the one difference from a deployment.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "STATIC_ROOT": str(DATA / "static"),
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }


def saved_credentials_exist(database_url: str) -> bool:
    """Whether the database holds saved credentials, which an earlier demo (one without its own
    keys) encrypted with the development key. A database that was only created — by `dev.py manage`,
    `dev.py services` or CI's migrations check — has no tables yet: nothing to re-encrypt."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('integrations_authorization') IS NOT NULL").fetchone()[0]:
            return False
        return conn.execute("SELECT EXISTS (SELECT 1 FROM integrations_authorization)").fetchone()[0]


def adopt_development_data(keys: str) -> bool:
    """A demo database made before the demo ran with DEBUG off holds credentials encrypted with the
    public development key: re-encrypt them with the demo's own key (once; DEBUG=1 for this step
    only, the one mode that may read the development key)."""
    development_key = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="  # config.settings._DEV_FIELD_KEY
    env = {**os.environ, "DEBUG": "1", "FIELD_ENCRYPTION_KEYS": f"{keys},{development_key}"}
    return subprocess.call(manage_command("rotate_encryption_keys"), cwd=ROOT, env=env) == 0


def cmd_run(args: list[str]) -> int:
    if args:
        say(f"`run` takes no arguments (got {' '.join(args)}); set PORT=... to choose the port")
        return 2
    first_keys = not DEMO_KEYS.exists()
    os.environ.update(demo_env())
    LOGS.mkdir(parents=True, exist_ok=True)
    services = start_services(DATA)
    children: list[Child] = []
    try:
        stop = wait_for_stop_signal()
        if first_keys and saved_credentials_exist(os.environ["DATABASE_URL"]):
            say("re-encrypting the saved credentials of an earlier demo with the new key in .data/demo-keys.json")
            if not adopt_development_data(os.environ["FIELD_ENCRYPTION_KEYS"]):
                say("could not re-encrypt them: delete .data/ to start the demo afresh")
                return 1
        for step in (("migrate", "--noinput"), ("collectstatic", "--noinput", "-v", "0")):
            say("manage.py " + " ".join(step))
            if subprocess.call(manage_command(*step), cwd=ROOT) != 0:
                if stop.is_set():
                    return 130
                say(f"manage.py {step[0]} failed")
                return 1
        # The demo's fake Amplitude and fake partners: started first (seed_demo points the demo
        # workspace at them) and read synchronously, before any thread exists (see spawn()).
        if os.environ.get("DEMO_SANDBOX", "1") != "0":
            sandbox = Child("sandbox", [sys.executable, "-m", "demo.servers"])
            sandbox.spawn()
            children.append(sandbox)
            if not read_sandbox_urls(sandbox):
                say("the sandbox servers did not start")
                return 1
            allow_sandboxes()
        login = seed_demo()
        if login is None:
            return 1
        if stop.is_set():
            return 130

        port = pick_port(int(os.environ.get("PORT") or 8000))
        os.environ["PORT"] = str(port)
        py = sys.executable
        # gunicorn before celery: the banner waits for it to accept connections.
        children += [
            Child(
                "web",
                [
                    py,
                    "-m",
                    "gunicorn",
                    "config.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    os.environ.get("WEB_CONCURRENCY", "3"),
                    "--access-logfile",
                    "-",
                    "--error-logfile",
                    "-",
                    "--graceful-timeout",
                    "10",
                    # gunicorn 27's control socket defaults to ~/.gunicorn/gunicorn.ctl, shared
                    # by every checkout; we do not use it.
                    "--no-control-socket",
                ],
            ),
            Child(
                "worker",
                [py, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES, "--concurrency", "2", "-l", "info"],
            ),
            Child(
                "beat",
                [py, "-m", "celery", "-A", "config", "beat", "-l", "info", "-s", str(DATA / "celerybeat-schedule")],
            ),
        ]
        # All spawned before any output thread starts: preexec_fn (die_with_parent) is only
        # safe in a process without threads. Their lines go to .data/logs/<name>.log, so the
        # banner below stays on screen; a child that dies is announced here with its log's tail.
        for child in children:
            if child.proc is None:
                child.spawn()
        for child in children:
            child.pump_output(LOGS / f"{child.name}.log")

        url = f"http://127.0.0.1:{port}/"
        if wait_for_port(port, children, stop):
            # The worker boots a few seconds after gunicorn: until it answers, /healthz would say
            # it is down right under a banner saying "running".
            if not wait_for_worker(port, children, stop) and not stop.is_set():
                say("/healthz does not answer ok yet (no worker heartbeat?): see the lines above")
            say("\n".join(demo_banner(url, login)))

        while not stop.wait(0.5):
            dead = [c for c in children if c.proc is not None and c.proc.poll() is not None]
            if dead:
                for c in dead:
                    say(f"{c.name} exited unexpectedly (exit code {c.proc.returncode}); stopping everything")
                    say("\n".join(c.tail()), c.name)
                return 1
        say("stopping ...")
        return 0
    finally:
        stop_children(children)
        services.stop()
        say("stopped")


def demo_banner(url: str, login: list[str] | None) -> list[str]:
    """What `run` leaves on screen: where, who, and the inbound key to push with (seed_demo's lines
    say the login and the key; the curl line repeats the key where it is used)."""
    key = next((line.split(":", 1)[1].strip() for line in login or [] if "Demo inbound API key:" in line), "")
    banner = ["", "=" * 72, f"Cohort Console is running at {url}  (DEBUG off, as in production)"]
    banner += [
        "  " + line.strip() for line in login or [] if line.strip().startswith(("Login:", "Demo inbound API key:"))
    ]
    if key:
        banner += [
            "Push a cohort yourself with the inbound key:",
            f"  curl -u '{key}:' {url}api/amplitude/lists -H 'Content-Type: application/json' \\",
            '       -d \'{"name": "[Amplitude] Trial users: 42"}\'',
        ]
    banner += [
        f"Prometheus metrics: {url}metrics    Admin: {url}admin/",
        f"Logs of web, worker, beat and the sandboxes: {_rel(LOGS)}/*.log",
        "Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    return banner


SMOKE_DATA = DATA / "smoke"


def production_env(port: int) -> dict[str, str]:
    """Production settings for the smoke: DEBUG off and keys generated for this run only. The one
    difference from a deployment is plain HTTP on loopback, so the TLS-only settings are off."""
    import secrets

    from cryptography.fernet import Fernet

    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "STATIC_ROOT": str(SMOKE_DATA / "static"),
        "CELERY_BEAT_SCHEDULE_FILENAME": str(SMOKE_DATA / "beat"),
        "DEMO_STATE_FILE": str(SMOKE_DATA / "demo-login.json"),
        "DEMO_PASSWORD": secrets.token_urlsafe(12),
        # Health notices go to the log: there is no mail server here.
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "LOG_LEVEL": "ERROR",  # refused pages (403 as a viewer, ...) are expected; errors are what counts
        "PORT": str(port),
    }


def cmd_smoke(args: list[str]) -> int:
    """The production smoke (.ci/run runs it after the tests): exit 0 only if every page, static file
    and API list answered without a server error as each role."""
    if args:
        say(f"`smoke` takes no arguments (got {' '.join(args)})")
        return 2
    ensure_chromium()
    chromium = os.environ.get("CHROMIUM_PATH", CHROMIUM)
    if not Path(chromium).exists():
        say(f"the smoke needs chromium at {chromium}")
        return 1
    started = time.monotonic()
    embedded = not os.environ.get("DATABASE_URL")
    if embedded and SMOKE_DATA.exists():
        shutil.rmtree(SMOKE_DATA)  # a fresh database every run: what a first production start meets
    SMOKE_DATA.mkdir(parents=True, exist_ok=True)
    services = start_services(SMOKE_DATA)
    port = pick_port(int(os.environ.get("SMOKE_PORT") or 8100))
    os.environ.update(production_env(port))
    children: list[Child] = []
    try:
        stop = wait_for_stop_signal()
        for step in (("migrate", "--noinput", "-v", "0"), ("collectstatic", "--noinput", "-v", "0")):
            say(f"manage.py {' '.join(step)}   (DEBUG=0; at {time.monotonic() - started:.0f}s)")
            if subprocess.call(manage_command(*step), cwd=ROOT) != 0:
                say(f"manage.py {step[0]} failed with production settings")
                return 1
        sandbox = Child("sandbox", [sys.executable, "-m", "demo.servers", "--members", "200"])
        sandbox.spawn()
        children.append(sandbox)
        if not read_sandbox_urls(sandbox):
            return 1
        allow_sandboxes()  # production settings refuse loopback and plain http: the sandboxes' ports only
        if seed_demo() is None:
            return 1
        py = sys.executable
        # The same commands the Docker image runs (config.start), so the smoke tests the real start.
        os.environ.update(BIND_ADDRESS="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="2")
        start = [py, "-m", "config.start"]
        children += [
            Child("web", [*start, "web", "--error-logfile", "-", "--no-control-socket"]),
            Child("worker", [*start, "worker", QUEUES, "--concurrency", "2"]),
            Child("beat", [*start, "beat", "-s", str(SMOKE_DATA / "celerybeat-schedule")]),
        ]
        for child in children:
            if child.proc is None:
                child.spawn()
        for child in children:
            child.pump_output()
        if not wait_for_port(port, children, stop) or not wait_for_worker(port, children, stop):
            say("the production start did not come up (web, or /healthz never answered ok): see above")
            return 1
        say(f"production start up at {time.monotonic() - started:.0f}s; visiting every page as each role ...")
        code = subprocess.call(
            [
                py,
                "-m",
                "config.smoke",
                "--base-url",
                f"http://127.0.0.1:{port}",
                "--password",
                os.environ["DEMO_PASSWORD"],
                "--chromium",
                chromium,
            ],
            cwd=ROOT,
        )
        dead = [c.name for c in children if c.proc is not None and c.proc.poll() is not None and c.name != "sandbox"]
        if dead:
            say(f"exited during the smoke: {', '.join(dead)}")
            code = code or 1
        say(f"smoke {'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f}s")
        return code
    finally:
        stop_children(children)
        services.stop()


def read_sandbox_urls(sandbox: Child) -> bool:
    """Export the SANDBOX_*_URL lines the demo servers print, until they say they are ready."""
    assert sandbox.proc is not None and sandbox.proc.stdout is not None
    for raw in iter(sandbox.proc.stdout.readline, b""):
        line = raw.decode(errors="replace").strip()
        name, _, value = line.partition("=")
        if name == "SANDBOX_READY":
            return True
        if name.startswith("SANDBOX_") and value:
            os.environ[name] = value
            say(f"{name}={value}", "sandbox")
    return False


def allow_sandboxes() -> None:
    """The outgoing-request policy refuses loopback and plain http: let the web server, the worker and
    seed_demo reach exactly the sandboxes' ports (added to any OUTBOUND_ALLOWED_NETWORKS of yours)."""
    ports = sorted(
        {
            urllib.parse.urlsplit(value).netloc
            for name, value in os.environ.items()
            if name.startswith("SANDBOX_") and name.endswith("_URL")
        }
    )
    given = [item for item in os.environ.get("OUTBOUND_ALLOWED_NETWORKS", "").split(",") if item.strip()]
    os.environ["OUTBOUND_ALLOWED_NETWORKS"] = ",".join(given + ports)
    os.environ["OUTBOUND_ALLOW_HTTP"] = "1"
    say(f"outgoing calls may reach the sandboxes: OUTBOUND_ALLOWED_NETWORKS={os.environ['OUTBOUND_ALLOWED_NETWORKS']}")


def seed_demo() -> list[str] | None:
    """Run seed_demo, echo its output and return it (it holds the demo login), None on failure."""
    say("manage.py seed_demo")
    result = subprocess.run(
        manage_command("seed_demo"), check=False, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if lines:
        say("\n".join(lines), "seed")
    if result.returncode != 0:
        say(f"manage.py seed_demo failed (exit code {result.returncode})")
        return None
    return lines


# -- child processes ----------------------------------------------------------


class Child:
    """A long-running child whose output lines are printed with a `name |` prefix."""

    def __init__(self, name: str, cmd: list[str]) -> None:
        self.name = name
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C reaches only us, and we stop the children in order
            # (and can kill a child's leftover processes, e.g. gunicorn workers, as a group).
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - called before any thread exists
        )

    def pump_output(self, log: Path | None = None) -> None:
        """Print the child's lines with its name, or append them to `log` (the demo's banner stays)."""
        assert self.proc is not None and self.proc.stdout is not None
        self.log = log
        threading.Thread(target=self._pump, args=(self.proc.stdout, log), daemon=True).start()

    def _pump(self, stream: IO[bytes], log: Path | None) -> None:
        out = log.open("ab", buffering=0) if log else None
        try:
            for raw in iter(stream.readline, b""):
                if out is not None:
                    out.write(raw)
                else:
                    say(raw.decode(errors="replace").rstrip("\r\n"), self.name)
        finally:
            if out is not None:
                out.close()

    def tail(self, lines: int = 20) -> list[str]:
        log = getattr(self, "log", None)
        if log is None or not log.exists():
            return []
        return log.read_text(errors="replace").splitlines()[-lines:]


def stop_children(children: list[Child]) -> None:
    """SIGTERM all (graceful for gunicorn and celery), wait, then SIGKILL what is left of each group."""
    running = [c for c in children if c.proc is not None]
    for c in running:
        if c.proc.poll() is None:
            c.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for c in running:
        try:
            c.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{c.name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
        # The group id is the child's pid (start_new_session); kill stragglers such as
        # pool processes whose parent was killed.
        try:
            os.killpg(c.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        c.proc.wait()


def pick_port(preferred: int) -> int:
    """`preferred` if free on 127.0.0.1, else any free port."""
    if _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    say(f"port {preferred} is busy; using {port}")
    return port


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until(ready, children: list[Child], stop: threading.Event, timeout: float, pause: float) -> bool:
    """Call `ready()` every `pause` seconds until it is true (False if a child died, we were stopped
    or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if any(c.proc is not None and c.proc.poll() is not None for c in children):
            return False
        if ready():
            return True
        stop.wait(pause)
    return False


def wait_for_worker(port: int, children: list[Child], stop: threading.Event, timeout: float = 60) -> bool:
    """Wait until /healthz answers 200 ("status": "ok"): database, Redis and a worker heartbeat.
    It answers 503 while anything is down, and details only to signed-in ops, so the status is
    what we read."""

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                return response.status == 200 and json.loads(response.read()).get("status") == "ok"
        except (OSError, ValueError, AttributeError):  # HTTPError (503) is an OSError
            return False

    return _wait_until(healthy, children, stop, timeout, pause=0.5)


def wait_for_port(port: int, children: list[Child], stop: threading.Event, timeout: float = 60) -> bool:
    """Wait until the web server accepts connections."""

    def accepts() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return _wait_until(accepts, children, stop, timeout, pause=0.2)
