"""integrations.locks.held_lock: an advisory lock on a connection of its own, gone with its process."""

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.db import connection

from integrations.locks import held_lock
from tests.conftest import test_database_url

HOLDER = """
import sys, time, django
django.setup()
from integrations.locks import held_lock
with held_lock(sys.argv[1]) as acquired:
    print("held" if acquired else "refused", flush=True)
    time.sleep(60)
"""


def advisory_holders(key: str) -> list[int]:
    """Backend pids holding advisory lock `key` (text form), seen from a fresh connection."""
    with psycopg.connect(test_database_url(), autocommit=True) as other:
        rows = other.execute(
            """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)""",
            [key],
        ).fetchall()
    return [pid for (pid,) in rows]


def lock_holders(key: str) -> list[int]:
    with psycopg.connect(test_database_url(), autocommit=True) as other:
        taken = other.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key]).fetchone()[0]
        if taken:
            other.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])
    return [] if taken else ["someone"]


@pytest.mark.django_db(transaction=True)
def test_the_lock_lives_on_its_own_connection_while_the_work_commits_on_another():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        work_pid = cursor.fetchone()[0]
    with held_lock("ops-test:a") as acquired:
        assert acquired
        holders = advisory_holders("ops-test:a")
        assert holders and work_pid not in holders
        with held_lock("ops-test:a") as second:  # a second taker, even in this process, is refused
            assert not second
        for _ in range(3):  # the work's own connection commits as it likes meanwhile
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        assert lock_holders("ops-test:a") == ["someone"]
    assert lock_holders("ops-test:a") == []


@pytest.mark.django_db(transaction=True)
def test_a_bigint_key_waits_up_to_the_given_time_for_the_lock():
    key = (0x5352 << 40) | 4242
    with psycopg.connect(test_database_url(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        started = time.monotonic()
        with held_lock(key, wait_seconds=0.5) as acquired:
            assert not acquired
        assert time.monotonic() - started >= 0.5
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
    with held_lock(key) as acquired:
        assert acquired


@pytest.mark.django_db(transaction=True)
def test_a_holder_killed_with_sigkill_releases_the_lock():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": test_database_url()}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "ops-test:killed"], env=env, cwd=os.getcwd(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holders("ops-test:killed") == ["someone"]
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    deadline = time.monotonic() + 10
    while lock_holders("ops-test:killed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lock_holders("ops-test:killed") == []
