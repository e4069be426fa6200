"""The console behind PgBouncer in transaction mode (docs/deployment.md), with a real PgBouncer.

Skipped where no `pgbouncer` binary is installed (Debian: apt-get install pgbouncer): the suite
needs only Python, and PgBouncer ships no wheel. A child process runs the console with
DATABASE_URL pointing at the pooler and DB_TRANSACTION_POOLING=1; it does real work: a cohort
import (temporary tables, COPY, SET LOCAL, live progress on a second connection, the run's lock),
a sync to the sandbox list partner and a Kochava stream pass, a scrape of /metrics.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from integrations.delivery.models import RunStatus
from integrations.sources.actions import create_run
from integrations.sources.models import ImportRun
from tests.conftest import test_database_url
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment
from tests.partners.test_end_to_end import kochava_destination, purchases

PGBOUNCER = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None)
pytestmark = [
    pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)"),
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pooler():
    """A PgBouncer in transaction mode on a UNIX socket in front of the test database; yields its URL."""
    upstream = urlsplit(test_database_url())
    socket_host = parse_qs(upstream.query).get("host", [None])[0]
    target = f"host={socket_host}" if socket_host else f"host={upstream.hostname} port={upstream.port or 5432}"
    if upstream.password:
        target += f" password={upstream.password}"
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir="/tmp"))
    # PgBouncer refuses to run as root: as root, run it as the user that can reach the database socket.
    run_as = []
    if os.geteuid() == 0:
        owner = pwd.getpwuid(os.stat(socket_host).st_uid if socket_host else pwd.getpwnam("nobody").pw_uid)
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        run_as = ["-u", owner.pw_name]
    workdir.chmod(0o755)
    port = 6400 + os.getpid() % 500  # names the socket file only: no TCP listener (listen_addr unset)
    (workdir / "pgbouncer.ini").write_text(
        textwrap.dedent(f"""\
        [databases]
        * = {target} user={upstream.username or "postgres"}
        [pgbouncer]
        pool_mode = transaction
        unix_socket_dir = {workdir}
        listen_port = {port}
        auth_type = any
        default_pool_size = 4
        max_client_conn = 50
        ignore_startup_parameters = extra_float_digits
        logfile = {workdir}/pgbouncer.log
        """)
    )
    process = subprocess.Popen([PGBOUNCER, *run_as, str(workdir / "pgbouncer.ini")], stdout=subprocess.DEVNULL)
    url = f"postgresql://{upstream.username or 'postgres'}@:{port}{upstream.path}?host={workdir}"
    deadline = time.monotonic() + 10
    while not (workdir / f".s.PGSQL.{port}").exists():
        assert process.poll() is None and time.monotonic() < deadline, (workdir / "pgbouncer.log").read_text()
        time.sleep(0.05)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def behind(url: str, script: str) -> list[str]:
    """Run `script` in a console process whose database is `url`; returns its printed lines."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": url,
        "DB_TRANSACTION_POOLING": "1",
        "SOURCES_POLL_INTERVAL": "0",
    }
    code = "import django\ndjango.setup()\n" + textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_it_is_really_transaction_pooling_where_a_session_lock_would_not_exclude(pooler):
    # Two clients, one pooled server connection between them one after the other: a session lock
    # taken by the first is "held" by the second too. This is why the code never relies on one.
    with psycopg.connect(pooler, autocommit=True) as first, psycopg.connect(pooler, autocommit=True) as second:
        assert first.execute("SELECT pg_try_advisory_lock(77)").fetchone()[0]
        assert second.execute("SELECT pg_try_advisory_lock(77)").fetchone()[0]  # not excluded
        first.execute("SELECT pg_advisory_unlock_all()")


def test_held_lock_excludes_and_the_work_commits_meanwhile(pooler):
    lines = behind(
        pooler,
        """
        from django.db import connection, transaction
        from integrations.locks import held_lock
        with held_lock("pooled") as first:
            with held_lock("pooled") as second:
                print(first, second)
            for i in range(5):
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout = '5s'")
                    cursor.execute("SELECT count(*) FROM workspaces_workspace")
            print("work-committed")
        with held_lock("pooled") as again:
            print(again)
        """,
    )
    assert lines == ["True", "False", "work-committed", "True"]


def test_a_cohort_import_a_sync_a_stream_and_a_scrape_through_the_pooler(pooler, acme, amp, cohort_job, partners):
    amp.sandbox.add_cohort("pool1", "Pooled", size=500)
    run = create_run(cohort_job, enqueue=False)
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(30)))
    job = job_for(
        segment, destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"})
    )
    kochava = partners("kochava")
    stream = kochava_destination(acme, kochava.base_url)
    purchases(acme, "e", 4)
    lines = behind(
        pooler,
        f"""
        from django.db import connection
        from django.test import Client
        from integrations.connectors.kochava.stream import stream_events
        from integrations.delivery.actions import start_run
        from integrations.delivery.engine import execute_run
        from integrations.delivery.models import Destination, SyncJob
        from integrations.sources.execution import execute_run as execute_import
        from workspaces.models import Workspace
        assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"]
        print(execute_import({run.pk}).status)
        sync = start_run(SyncJob.objects.get(pk={job.pk}), trigger="test")
        print(execute_run(sync.pk).status)
        print(stream_events(Destination.objects.get(pk={stream.pk})).sent)
        print(len(list(Workspace.objects.iterator(chunk_size=1))))
        print(Client().get("/metrics").status_code)
        """,
    )
    assert lines == ["succeeded", RunStatus.SUCCEEDED, "4", "1", "200"]
    run.refresh_from_db()
    assert run.counts["entered"] == 500 and ImportRun.objects.get(pk=run.pk).rows_done == 500
    job.refresh_from_db()
    assert len(partner.fake.members(job.partner_state["list_id"])) == 30
