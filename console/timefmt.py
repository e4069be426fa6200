"""One way to write a moment on every console page: in the workspace's time zone, labelled.

The zone is the one Django has active (workspaces.middleware activates the workspace's zone for
every request), so a page, a message and the admin all agree. Formats:

- when:  "4 Dec 2026, 06:00 CET"        (a moment; with seconds for run timelines)
- clock: "06:00 CET"                    (a time later today, e.g. "resumes at")
- day:   "4 Dec 2026"; short: "Fri 4 Dec" (dates, chart axes)
- ago:   "3 hours ago" (with the full `when` as its tooltip)

The zone is labelled by its abbreviation (CET/CEST, UTC, EST; zones without one show their offset,
"+03"), never left for the reader to guess.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.utils import timezone
from django.utils.timesince import timesince


def zone(tz_name: str | None = None) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(tz_name) if tz_name else timezone.get_current_timezone()


def _local(moment: dt.datetime | dt.date, tz_name: str | None = None) -> dt.datetime | dt.date:
    if isinstance(moment, dt.datetime):
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, dt.UTC)
        return moment.astimezone(zone(tz_name))
    return moment


def _label(local: dt.datetime) -> str:
    return local.tzname() or local.strftime("%z")


def when(moment, seconds: bool = False, tz_name: str | None = None) -> str:
    """'4 Dec 2026, 06:00 CET' ('' for None, so templates can add |default)."""
    if moment is None or moment == "":
        return ""
    local = _local(moment, tz_name)
    if not isinstance(local, dt.datetime):
        return day(local)
    time = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{local.day} {local:%b %Y}, {time} {_label(local)}"


def clock(moment, seconds: bool = False, tz_name: str | None = None) -> str:
    """'06:00 CET'; a moment on another day than today (in the zone) gets its date too."""
    if moment is None or moment == "":
        return ""
    local = _local(moment, tz_name)
    if local.date() != timezone.now().astimezone(local.tzinfo).date():
        return when(moment, seconds, tz_name)
    time = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{time} {_label(local)}"


def day(moment, short: bool = False) -> str:
    """'4 Dec 2026' (short: 'Fri 4 Dec', for chart axes)."""
    if moment is None or moment == "":
        return ""
    local = _local(moment)
    return f"{local:%a} {local.day} {local:%b}" if short else f"{local.day} {local:%b %Y}"


def ago(moment) -> str:
    """'3 hours ago', 'in 5 minutes'; 'just now' under a minute."""
    if moment is None or moment == "":
        return ""
    now = timezone.now()
    if abs((now - moment).total_seconds()) < 60:
        return "just now"
    if moment > now:
        return f"in {timesince(now, moment, depth=1)}"
    return f"{timesince(moment, now, depth=1)} ago"


def zone_name(tz_name: str | None = None) -> str:
    """The IANA name of the active zone (what a page's 'Times in …' note says)."""
    return str(zone(tz_name))
