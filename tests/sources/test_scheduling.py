"""Schedules with a controlled clock: daily at a local time across DST changes, hourly, dispatching."""

from datetime import UTC, datetime, time

from integrations.schedules import next_daily, next_run_after
from integrations.sources.models import Cadence, EventImportJob, ImportRun, RunStatus
from integrations.sources.scheduling import dispatch_due, first_run_at


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_daily_follows_local_time_across_dst():
    ny = "America/New_York"
    # Winter: 09:00 EST = 14:00 UTC; summer: 09:00 EDT = 13:00 UTC.
    assert next_daily(utc(2024, 3, 9, 15), time(9), ny) == utc(2024, 3, 10, 13)
    assert next_daily(utc(2024, 11, 2, 14), time(9), ny) == utc(2024, 11, 3, 14)


def test_daily_in_the_spring_forward_gap_runs_once_moved_by_the_gap():
    # 02:30 does not exist in New York on 2024-03-10: the run happens at 03:30 EDT (07:30 UTC), once.
    first = next_daily(utc(2024, 3, 10, 0), time(2, 30), "America/New_York")
    assert first == utc(2024, 3, 10, 7, 30)
    assert next_daily(first, time(2, 30), "America/New_York") == utc(2024, 3, 11, 6, 30)


def test_daily_in_the_fall_back_repeat_runs_once_at_the_first_occurrence():
    # 01:30 happens twice in New York on 2024-11-03 (EDT 05:30 UTC, then EST 06:30 UTC).
    first = next_daily(utc(2024, 11, 3, 0), time(1, 30), "America/New_York")
    assert first == utc(2024, 11, 3, 5, 30)
    assert next_daily(first, time(1, 30), "America/New_York") == utc(2024, 11, 4, 6, 30)


def test_daily_in_a_southern_and_a_half_hour_zone():
    assert next_daily(utc(2024, 4, 6, 12), time(2, 30), "Australia/Sydney") == utc(2024, 4, 6, 15, 30)  # AEDT→AEST
    assert next_daily(utc(2024, 1, 1), time(6), "Asia/Kolkata") == utc(2024, 1, 1, 0, 30)


def test_hourly():
    assert next_run_after(EventImportJob(keep_updated=True), utc(2024, 1, 1, 10, 59, 59)) == utc(2024, 1, 1, 11)


def test_dispatch_due_queues_due_jobs_once_and_moves_next_run(
    amp, cohort_job, event_job, django_capture_on_commit_callbacks
):
    cohort_job.cadence, cohort_job.time_of_day, cohort_job.timezone = Cadence.DAILY, time(6), "Europe/Berlin"
    now = utc(2024, 3, 30, 5, 0)  # 06:00 CET
    cohort_job.next_run_at = now
    cohort_job.save()
    event_job.next_run_at = now
    event_job.save()
    amp.sandbox.add_cohort("d1", "D", size=5)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert dispatch_due(now) == 2
        assert dispatch_due(now) == 0  # nothing due any more
    assert len(callbacks) == 2
    cohort_job.refresh_from_db()
    event_job.refresh_from_db()
    assert cohort_job.next_run_at == utc(2024, 3, 31, 4, 0)  # 06:00 CEST, the day the clocks go forward
    assert event_job.next_run_at == utc(2024, 3, 30, 6, 0)
    assert ImportRun.objects.filter(status=RunStatus.QUEUED).count() == 2


def test_one_time_job_runs_once(cohort_job):
    now = utc(2024, 1, 1, 12)
    cohort_job.cadence = Cadence.ONE_TIME
    cohort_job.next_run_at = first_run_at(cohort_job, now)
    cohort_job.save()
    dispatch_due(now)
    cohort_job.refresh_from_db()
    assert cohort_job.next_run_at is None


def test_over_quota_scheduled_run_is_recorded_as_skipped(cohort_job, settings):
    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 0
    cohort_job.next_run_at = utc(2024, 1, 1)
    cohort_job.save()
    dispatch_due(utc(2024, 1, 1, 0, 1))
    run = ImportRun.objects.get(cohort_job=cohort_job)
    assert run.status == RunStatus.SKIPPED and "cohort downloads a month" in run.error
