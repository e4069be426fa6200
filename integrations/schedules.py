"""Wall-clock schedule arithmetic shared by imports and syncs.

A daily job runs at HH:MM local time in its IANA zone, resolved per date with zoneinfo, so 09:00
stays 09:00 across DST changes:
- spring forward (the local time does not exist that day, e.g. 02:30 in New York on the March
  change): zoneinfo applies the offset in force before the gap, so the run happens one gap later
  (02:30 → 03:30 local) — still once that day;
- fall back (the local time happens twice, e.g. 01:30 on the November change): only the FIRST
  occurrence (fold=0) is a candidate, so it runs once that day.
Every function takes the current time, so tests control the clock.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


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


def next_utc_hour(after: datetime) -> datetime:
    return after.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
