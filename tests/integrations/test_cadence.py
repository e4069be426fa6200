"""Imports and syncs read one schedule: the same cadence, zone and clock give the same next run.

The decision (docs/operations.md, "Schedules"): a job's times are in the job's own zone, hourly
included, so in a +05:30 or +05:45 zone "hourly" is the top of each local hour (:30 / :15 past the
UTC hour). These tests fail if the two kinds of job ever disagree again.
"""

import datetime as dt

import pytest

from integrations.delivery.models import SyncJob
from integrations.delivery.scheduling import next_run_after as sync_next_run
from integrations.sources.models import CohortImportJob, EventImportJob
from integrations.sources.scheduling import next_run_after as import_next_run

UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


CASES = [
    # (cadence, time_of_day, zone, now, expected next run)
    ("hourly", None, "Asia/Kolkata", utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 30)),  # +05:30
    ("hourly", None, "Asia/Kolkata", utc(2026, 1, 1, 0, 40), utc(2026, 1, 1, 1, 30)),
    ("hourly", None, "Asia/Kathmandu", utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 15)),  # +05:45
    ("hourly", None, "America/St_Johns", utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 30)),  # -03:30
    ("hourly", None, "UTC", utc(2026, 1, 1, 10, 59, 59), utc(2026, 1, 1, 11)),
    ("hourly", None, "Europe/Berlin", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1)),  # 02:00 CET does not exist
    ("daily", dt.time(6), "Asia/Kolkata", utc(2026, 1, 1, 12), utc(2026, 1, 2, 0, 30)),
    ("daily", dt.time(2, 30), "America/New_York", utc(2026, 3, 8), utc(2026, 3, 8, 7, 30)),  # in the spring gap
    ("one_time", None, "Asia/Kolkata", utc(2026, 1, 1), None),
]


@pytest.mark.parametrize(("cadence", "time_of_day", "zone", "now", "expected"), CASES)
def test_an_import_and_a_sync_on_the_same_schedule_run_at_the_same_instant(cadence, time_of_day, zone, now, expected):
    sync = SyncJob(cadence=cadence, time_of_day=time_of_day, timezone=zone)
    cohort_import = CohortImportJob(cadence=cadence, time_of_day=time_of_day, timezone=zone)
    assert sync_next_run(sync, now) == import_next_run(cohort_import, now) == expected


def test_event_imports_follow_the_utc_hours_of_the_export_api():
    # An event job has no zone of its own: Amplitude exports events by UTC hour.
    now = utc(2026, 1, 1, 0, 10)
    assert import_next_run(EventImportJob(keep_updated=True), now) == utc(2026, 1, 1, 1)
    assert import_next_run(EventImportJob(keep_updated=False), now) is None


def test_imports_offer_every_cadence_of_syncs_but_real_time():
    # One list of cadences: a pull spends Amplitude's monthly download quota, so never every minute.
    sync_choices = dict(SyncJob._meta.get_field("cadence").choices)
    import_choices = dict(CohortImportJob._meta.get_field("cadence").choices)
    assert set(sync_choices) - set(import_choices) == {"realtime"}
    assert all(sync_choices[value] == label for value, label in import_choices.items())
