"""A worker killed in the middle of a cohort import: nothing half-applied, the redelivered task redoes it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from audiences.models import MembershipChange, Segment, SegmentMember
from integrations.sources.actions import create_run
from integrations.sources.execution import execute_run
from integrations.sources.models import ImportRun, RunStatus
from tests.conftest import test_database_url

WORKER = """
import django, sys
django.setup()
from integrations.sources.execution import execute_run
execute_run(int(sys.argv[1]))
"""


@pytest.mark.django_db(transaction=True)
def test_killed_worker_leaves_nothing_and_the_redo_reaches_the_same_end_state(amp, cohort_job):
    size = 200_000
    amp.sandbox.add_cohort("kill1", "Killed mid-way", size=size, churn=0.0)
    run = create_run(cohort_job, enqueue=False)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "SOURCES_POLL_INTERVAL": "0",
        "DATABASE_URL": test_database_url(),
    }
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(run.pk)], env=env, cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.phase.startswith("loading"):
                break
            assert worker.poll() is None, "the worker ended before loading"
            time.sleep(0.02)
        time.sleep(0.3)  # well inside the load transaction (COPY of 200k rows)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # what a dead worker leaves behind
    assert not Segment.objects.filter(external_id="kill1").exists()
    assert not MembershipChange.objects.exists() and not SegmentMember.objects.exists()

    # Celery redelivers the task (acks_late): the run is redone from the start.
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["restarts"] == 1 and run.counts["entered"] == size
    segment = Segment.objects.get(external_id="kill1")
    assert segment.size == size == SegmentMember.objects.filter(segment=segment).count()
    assert MembershipChange.objects.filter(segment=segment).count() == size
    assert ImportRun.objects.get(pk=run.pk).finished_at is not None
