"""The Dockerfile, compose.yaml and the guides start the console only through config/start.py,
and what config/start.py starts really runs in production mode.

This machine has no container runtime: the image is never built here. These tests parse what can
be parsed and run the very commands the image's entrypoint runs.
"""

import ast
import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.fernet import Fernet
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.celery import QUEUES, app
from config.scheduler import TICK_KEY, tick
from config.start import PROCESSES, check, command, worker_name
from integrations.redis_client import redis_client
from tests.conftest import test_database_url

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ["python", "-m", "config.start"]
MARKER = "# ---- Development only below this line"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def app_services() -> dict[str, dict]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image") == "cohort-console:latest"}


# -- the Dockerfile ---------------------------------------------------------------------------------


def test_the_image_starts_every_process_through_the_production_start():
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ENTRYPOINT
    (default,) = json.loads(stage["CMD"])
    assert default in PROCESSES
    command(default)  # a process config.start knows


def test_the_image_is_multi_stage_runs_as_a_user_and_collects_static_at_build():
    froms = [args for name, args in dockerfile_instructions() if name == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build") and froms[0].split()[0] == froms[1]
    user = dict(final_stage())["USER"].split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    build_runs = [args for name, args in dockerfile_instructions()[: -len(final_stage())] if name == "RUN"]
    assert any("manage.py collectstatic --noinput" in run and "DEBUG=0" in run for run in build_runs)
    assert dict(final_stage())["EXPOSE"] == "8000"
    # It installs the requirements above the marker: exactly one marker, with the runtime pins above it.
    patterns = [m[1] for run in build_runs for m in re.finditer(r"sed '/\^(.+?)/,\$d' requirements\.txt", run)]
    assert len(patterns) == 1 and MARKER.startswith(patterns[0])
    assert (ROOT / "requirements.txt").read_text().count(MARKER) == 1


def runtime_requirements() -> set[str]:
    """Distributions the image installs: the pins above the marker and what they require."""
    above = (ROOT / "requirements.txt").read_text().split(MARKER)[0]
    todo = [Requirement(line) for line in above.splitlines() if line.strip() and not line.startswith("#")]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for raw in importlib.metadata.requires(requirement.name) or []:
            child = Requirement(raw)
            if child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in (requirement.extras or {""})
            ):
                todo.append(child)
    return seen


def test_every_module_the_product_imports_is_installed_in_the_image():
    """A runtime import of a package pinned below the marker (dev only) would break the image."""
    dev_only = {"tests", "bench", ".venv", ".data", "staticfiles"}
    dev_files = {"dev.py", "config/devctl.py", "config/embedded.py", "config/settings_test.py", "config/smoke.py"}
    ours = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    distributions = importlib.metadata.packages_distributions()
    needed: dict[str, str] = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in dev_only or str(relative) in dev_files:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ours:
                    for dist in distributions.get(top, [top]):
                        needed[canonicalize_name(dist)] = str(relative)
    missing = {dist: where for dist, where in needed.items() if dist not in runtime_requirements()}
    assert not missing, f"imported at runtime but not installed in the image: {missing}"


# -- compose.yaml -------------------------------------------------------------------------------------


def test_compose_runs_web_a_worker_per_queue_one_beat_postgres_and_redis():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "web", "beat"} <= set(services)
    apps = app_services()
    processes = [svc["command"][0] for svc in apps.values()]
    assert set(processes) <= set(PROCESSES) and processes.count("beat") == 1 and processes.count("web") == 1
    workers = [svc["command"][1] for svc in apps.values() if svc["command"][0] == "worker"]
    assert sorted(workers) == sorted(QUEUES)  # one worker service per queue, each queue once
    for name, svc in apps.items():
        argv = command(svc["command"][0], svc["command"][1:])  # config.start accepts every one
        assert argv[0] == sys.executable, name


def test_compose_health_checks_call_the_production_start_for_the_same_process():
    services = compose()["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    for name, svc in app_services().items():
        process = svc["command"][0]
        if process == "migrate":
            assert svc["restart"] == "no"
            continue
        expected = ["CMD", *ENTRYPOINT, "check", process]
        if process == "worker":
            expected.append(svc["command"][1])
        assert svc["healthcheck"]["test"] == expected, name
        assert svc["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}, name


def test_compose_keeps_data_in_volumes_and_passes_only_settings_the_console_reads():
    document = compose()
    services = document["services"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    assert {"pgdata", "redisdata"} <= set(document["volumes"])
    assert services["web"]["ports"][0].endswith(":8000")
    read = (ROOT / "config" / "settings.py").read_text() + (ROOT / "config" / "start.py").read_text()
    for name, svc in app_services().items():
        for variable in svc["environment"]:
            setting = variable.removesuffix("_FILE")
            assert f'"{setting}"' in read or f"'{setting}'" in read, f"{name}: {variable} is read by nothing"
        for secret in svc["secrets"]:
            assert secret in document["secrets"]


def test_the_guides_start_processes_only_through_the_production_start():
    texts = {p.name: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
    for name, text in texts.items():
        for match in re.finditer(r"python -m config\.start (\w+)", text):
            assert match[1] in (*PROCESSES, "check"), f"{name}: {match[0]}"
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
            for line in block.splitlines():
                by_hand = line.strip().startswith(("gunicorn ", "celery "))
                assert not by_hand, f"{name} starts a process by hand instead of through config.start: {line}"
    assert "python -m config.start web" in texts["deployment.md"]


# -- the commands themselves, run for real ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(**extra: str) -> dict:
    dropped = {"DEBUG", "DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {
        **env,
        "DEBUG": "0",
        "SECRET_KEY": "x" * 60 + "-production-secret-key-for-tests",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "console.example.com",
        "DATABASE_URL": test_database_url(),
        "METRICS_TOKEN": "deployment-test-token-0123456789",
        "BIND_ADDRESS": "127.0.0.1",
        **extra,
    }


def start(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "config.start", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_web_serves_metrics_in_production_mode_and_its_health_check_follows_it():
    env = production_env(PORT=str(free_port()), WEB_CONCURRENCY="1")
    web = subprocess.Popen([sys.executable, "-m", "config.start", "web"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{env['PORT']}/metrics"
    try:
        headers = {"Host": "console.example.com", "Authorization": f"Bearer {env['METRICS_TOKEN']}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.get(url, headers=headers, timeout=5, allow_redirects=False)
                break
            except requests.ConnectionError:
                assert web.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        assert "cohort_console_runs_active" in response.text
        assert requests.get(url, headers={"Host": "console.example.com"}, timeout=5).status_code == 401
        checked = start("check", "web", env=env)
        assert checked.returncode == 0, checked.stderr
    finally:
        web.terminate()
        web.wait(20)
    checked = start("check", "web", env=env)
    assert checked.returncode == 1 and "did not answer" in checked.stderr


@pytest.mark.django_db(transaction=True)
def test_worker_beat_and_migrate_commands_and_their_health_checks():
    env = production_env()
    assert start("migrate", env=env).returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "config.start", "worker", "default", "--pool", "solo", "--without-mingle"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[worker_name(["default"])], timeout=0.5):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start"
        checked = start("check", "worker", "default", env=env)
        assert checked.returncode == 0, checked.stderr
        assert check("worker", ["inbound"]) == f"worker {worker_name(['inbound'])} did not answer a ping within 5 s"
    finally:
        worker.terminate()
        worker.wait(20)
    redis_client().delete(TICK_KEY)
    assert check("beat") == "no scheduler tick recorded yet"
    tick()
    assert check("beat") is None
    redis_client().set(TICK_KEY, str(time.time() - 600))
    assert int(re.fullmatch(r"the last scheduler tick was (\d+) s ago", check("beat"))[1]) >= 600
