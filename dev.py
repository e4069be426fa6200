#!/usr/bin/env python3
"""Cohort Console developer entry point: needs only Python 3.11+, nothing else installed.

    python3 dev.py run                  the console at http://127.0.0.1:8000/ (web, worker, beat)
    python3 dev.py test [PYTEST ARGS]   the test suite
    python3 dev.py services             only PostgreSQL + Redis; prints the export lines
    python3 dev.py manage ARGS          manage.py with the same servers
    python3 dev.py bench [NAME [ARGS]]  a benchmark from bench/ on its own embedded servers

This file is stdlib-only on purpose: it runs under the system Python, before any dependency
exists. It creates .venv, installs requirements.txt into it, re-executes itself with the venv's
Python and hands over to config/devctl.py, which does the real work.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
# sha256 of the requirements.txt last installed into .venv. A pip install that finds nothing to
# do still takes seconds (it resolves every pin); comparing one hash takes nothing. The stamp is
# written only after pip succeeds, so a failed install is retried on the next run.
STAMP = VENV / ".requirements.sha256"


def say(message: str) -> None:
    print(f"dev.py | {message}", flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv() -> None:
    python = venv_python()
    if python.exists() and subprocess.call([python, "-c", "import pip"], stderr=subprocess.DEVNULL) == 0:
        return
    # Missing, or broken (e.g. the Python it points to was removed): build it anew.
    say(f"creating {VENV.name} with {sys.executable} ...")
    venv.EnvBuilder(with_pip=True, clear=VENV.exists(), symlinks=os.name != "nt").create(VENV)


def ensure_requirements() -> None:
    if not REQUIREMENTS.exists():
        sys.exit(f"dev.py | {REQUIREMENTS} is missing")
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    say("installing requirements.txt into .venv (only when it changes) ...")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    cmd = [str(venv_python()), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)]
    if subprocess.call(cmd, env=env) != 0:
        sys.exit("dev.py | pip install -r requirements.txt failed (see above)")
    STAMP.write_text(digest + "\n")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any system python3
        sys.exit("dev.py | Python 3.11 or newer is required")
    if sys.argv[1:2] in ([], ["-h"], ["--help"], ["help"]):
        print(__doc__)
        return 0
    ensure_venv()
    ensure_requirements()
    if not in_venv():
        if os.environ.get("_DEV_PY_REEXEC"):  # guard against an exec loop
            sys.exit(f"dev.py | {venv_python()} does not run inside {VENV}")
        os.environ["_DEV_PY_REEXEC"] = "1"
        python = str(venv_python())
        # exec, not a child: same pid, so signals (Ctrl-C, SIGTERM) and the exit code go straight through.
        os.execv(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]])
    os.environ.pop("_DEV_PY_REEXEC", None)
    sys.path.insert(0, str(ROOT))
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE")
    from config import devctl  # only now: config needs the packages of the venv just entered

    # Importing the `config` package loads the Celery app, which setdefaults
    # DJANGO_SETTINGS_MODULE=config.settings. Children must not inherit that: pytest-django lets
    # the environment variable win over pyproject's config.settings_test.
    if settings_module is None:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    return devctl.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
