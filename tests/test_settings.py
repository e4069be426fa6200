"""Start-up refuses missing or malformed settings with a message that names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PROD = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 60 + "-production-secret-key-for-tests",
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "console.example.com",
}


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE is set by the browser tests in this process; a deploy check rightly flags it.
    dropped = {"DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    base.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PROD)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "ALLOWED_HOSTS"])
def test_missing_secret_in_production_names_the_variable(missing):
    env = {k: v for k, v in PROD.items() if k != missing}
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert missing in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("REDIS_URL", "memcached://localhost"),
        ("DEBUG", "maybe"),
        ("FIELD_ENCRYPTION_KEYS", "not-a-fernet-key"),
        ("EMAIL_PORT", "twenty-five"),
    ],
)
def test_malformed_setting_names_the_variable(name, value):
    result = run_manage("check", **{**PROD, name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_secret_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(PROD["SECRET_KEY"] + "\n")
    env = {k: v for k, v in PROD.items() if k != "SECRET_KEY"}
    result = run_manage("check", SECRET_KEY_FILE=str(secret_file), **env)
    assert result.returncode == 0, result.stderr


def test_unreadable_secret_file_is_named(tmp_path):
    env = {k: v for k, v in PROD.items() if k != "SECRET_KEY"}
    result = run_manage("check", SECRET_KEY_FILE=str(tmp_path / "nope"), **env)
    assert result.returncode != 0 and "SECRET_KEY_FILE" in result.stderr


# --- development keys: DEBUG=1 may use them, production never --------------------------------------


def _dev_keys() -> dict:
    from config import settings

    return {"SECRET_KEY": settings._DEV_SECRET_KEY, "FIELD_ENCRYPTION_KEYS": settings._DEV_FIELD_KEY}


@pytest.mark.parametrize("name", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
def test_production_refuses_a_development_key_given_explicitly(name):
    value = _dev_keys()[name]
    if name == "FIELD_ENCRYPTION_KEYS":
        value = f"{PROD[name]},{value}"  # even as an old key behind a real one
    result = run_manage("check", **{**PROD, name: value})
    assert result.returncode != 0
    assert name in result.stderr and "development" in result.stderr


def test_debug_with_development_keys_says_so_on_every_check():
    result = run_manage("check", DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "config.W001" in result.stderr
    assert "SECRET_KEY" in result.stderr and "FIELD_ENCRYPTION_KEYS" in result.stderr


def test_debug_with_real_keys_has_no_warning():
    env = {k: v for k, v in PROD.items() if k != "ALLOWED_HOSTS"}
    result = run_manage("check", **{**env, "DEBUG": "1"})
    assert result.returncode == 0 and "config.W001" not in result.stderr


def test_development_keys_never_serve_a_real_host_name():
    """DEBUG=1 answering a public name is a production instance in all but name."""
    result = run_manage("check", DEBUG="1", ALLOWED_HOSTS="console.example.com")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr and "console.example.com" in result.stderr
