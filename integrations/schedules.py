"""When scheduled jobs run: one Cadence and one next-run function for imports and syncs.

A job's schedule is wall-clock time in the job's IANA zone (`timezone`), hourly included:
- one time: never again by itself;
- hourly: the top of each hour in the job's zone. In a whole-hour zone that is the top of the UTC
  hour; in +05:30 (India) it is :30 past it, the local :00 a person there expects. The next hour is
  counted in UTC, so a DST change neither skips nor repeats a run;
- daily: HH:MM local time, resolved per date with zoneinfo, so 09:00 stays 09:00 across DST changes:
  spring forward (the local time does not exist that day, e.g. 02:30 in New York on the March
  change): zoneinfo applies the offset in force before the gap, so the run happens one gap later
  (02:30 → 03:30 local) — still once that day; fall back (the local time happens twice, e.g. 01:30 on
  the November change): only the FIRST occurrence (fold=0) is a candidate, so it runs once that day;
- real time: the next whole minute (syncs only; pulls spend Amplitude's monthly download quota).
Event imports have no zone of their own: they follow the Export API's UTC hours (EventImportJob
says so in its `cadence` and `timezone`). docs/operations.md explains the choice.
Every function takes the current time, so tests control the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from django.db import models


class Cadence(models.TextChoices):
    ONE_TIME = "one_time", "One time"
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily at a time of day"
    REALTIME = "realtime", "Real time (every minute)"


# Import jobs offer every cadence but real time (values and labels are Cadence's own).
IMPORT_CADENCES = [(c.value, c.label) for c in (Cadence.ONE_TIME, Cadence.HOURLY, Cadence.DAILY)]


class Scheduled(Protocol):
    """What a job needs to be scheduled: SyncJob, CohortImportJob and EventImportJob have it."""

    cadence: str
    time_of_day: time | None
    timezone: str


def next_run_after(job: Scheduled, after: datetime) -> datetime | None:
    """The job's first scheduled instant strictly after `after`, in UTC; None for a one-time job."""
    after = after.astimezone(UTC)
    if job.cadence == Cadence.ONE_TIME:
        return None
    if job.cadence == Cadence.REALTIME:
        return after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if job.cadence == Cadence.HOURLY:
        local = after.astimezone(ZoneInfo(job.timezone or "UTC"))
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC) + timedelta(hours=1)
    if job.cadence == Cadence.DAILY:
        return next_daily(after, job.time_of_day, job.timezone)
    raise ValueError(f"Unknown cadence {job.cadence!r}.")


def next_daily(after: datetime, time_of_day: time, tz_name: str) -> datetime:
    """The first `time_of_day` in `tz_name` strictly after `after`, as a UTC datetime."""
    tz = ZoneInfo(tz_name or "UTC")
    local_day = after.astimezone(tz).date()
    for offset in range(3):
        wall = datetime.combine(local_day + timedelta(days=offset), time_of_day.replace(tzinfo=None, fold=0))
        candidate = wall.replace(tzinfo=tz).astimezone(UTC)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a daily time always occurs within 3 days")
