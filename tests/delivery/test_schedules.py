"""Next-run times across DST with a controlled clock (America/New_York: 2026-03-08 and 2026-11-01)."""

import datetime as dt
import itertools
import zoneinfo

from integrations.delivery.models import SyncJob
from integrations.delivery.scheduling import next_run_after

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC


def walk(job: SyncJob, start: dt.datetime, count: int) -> list[dt.datetime]:
    runs, now = [], start
    for _ in range(count):
        now = next_run_after(job, now)
        runs.append(now)
    return runs


def test_daily_runs_keep_the_local_time_of_day_across_both_dst_changes():
    job = SyncJob(cadence="daily", time_of_day=dt.time(9, 0), timezone="America/New_York")
    runs = walk(job, dt.datetime(2026, 3, 6, 15, tzinfo=UTC), 4)
    assert [r.astimezone(NY).strftime("%m-%d %H:%M") for r in runs] == [
        "03-07 09:00",
        "03-08 09:00",
        "03-09 09:00",
        "03-10 09:00",
    ]
    assert [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(runs)] == [23, 24, 24]
    autumn = walk(job, dt.datetime(2026, 10, 31, 12, tzinfo=UTC), 2)
    assert (autumn[1] - autumn[0]).total_seconds() / 3600 == 25


def test_a_daily_time_inside_the_spring_gap_runs_once_after_the_jump():
    job = SyncJob(cadence="daily", time_of_day=dt.time(2, 30), timezone="America/New_York")
    runs = walk(job, dt.datetime(2026, 3, 7, 12, tzinfo=UTC), 2)
    assert [r.astimezone(NY).strftime("%m-%d %H:%M") for r in runs] == ["03-08 03:30", "03-09 02:30"]


def test_an_ambiguous_daily_time_on_the_autumn_change_runs_once():
    job = SyncJob(cadence="daily", time_of_day=dt.time(1, 30), timezone="America/New_York")
    runs = walk(job, dt.datetime(2026, 10, 31, 12, tzinfo=UTC), 2)
    assert runs[0] == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # the first 01:30 (EDT)
    assert runs[1].astimezone(NY).strftime("%m-%d %H:%M") == "11-02 01:30"


def test_hourly_runs_every_real_hour_through_the_repeated_hour():
    job = SyncJob(cadence="hourly", timezone="America/New_York")
    runs = walk(job, dt.datetime(2026, 11, 1, 4, 10, tzinfo=UTC), 4)
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(runs)] == [3600] * 3
    assert [r.astimezone(NY).strftime("%H:%M%z") for r in runs] == [
        "01:00-0400",
        "01:00-0500",
        "02:00-0500",
        "03:00-0500",
    ]


def test_hourly_in_a_half_hour_zone_follows_the_local_hour():
    job = SyncJob(cadence="hourly", timezone="Asia/Kolkata")
    (first,) = walk(job, dt.datetime(2026, 1, 1, 0, 10, tzinfo=UTC), 1)
    assert first == dt.datetime(2026, 1, 1, 0, 30, tzinfo=UTC)


def test_realtime_runs_every_minute_and_one_time_never_again():
    now = dt.datetime(2026, 1, 1, 0, 0, 59, 500, tzinfo=UTC)
    assert next_run_after(SyncJob(cadence="realtime"), now) == dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert next_run_after(SyncJob(cadence="one_time"), now) is None
