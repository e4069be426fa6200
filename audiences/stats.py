"""Segment numbers marketers trust: one definition each, used by the console, the API and the dashboard.

Size is Segment.size, maintained by audiences.ledger in the same statement as the ledger rows, so
no page ever counts members. Adds and drops come from the ledger's (segment, occurred_at) index.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection
from django.utils import timezone

from audiences.models import Segment


@dataclass
class SegmentActivity:
    added_24h: int = 0
    removed_24h: int = 0


def activity_24h(segment_ids: list[int], now=None) -> dict[int, SegmentActivity]:
    now = now or timezone.now()
    result = {segment_id: SegmentActivity() for segment_id in segment_ids}
    if not segment_ids:
        return result
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT segment_id, action, count(*) FROM audiences_membershipchange
            WHERE segment_id = ANY(%s) AND occurred_at > %s
            GROUP BY segment_id, action
            """,
            [segment_ids, now - timedelta(hours=24)],
        )
        for segment_id, action, count in cursor.fetchall():
            if action == "added":
                result[segment_id].added_24h = count
            else:
                result[segment_id].removed_24h = count
    return result


@dataclass
class DayPoint:
    day: date
    size: int  # at the end of the day
    added: int
    removed: int


def daily_history(segment: Segment, days: int = 30, tz=None, now=None) -> list[DayPoint]:
    """Size at the end of each of the last `days` days (in `tz`), with that day's adds and drops.

    Walks back from the current size: size(end of day d) = size now − net changes after day d.
    """
    now = now or timezone.now()
    tz = tz or segment.workspace.tz
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (occurred_at AT TIME ZONE %s)::date AS day,
                   count(*) FILTER (WHERE action = 'added'), count(*) FILTER (WHERE action = 'removed')
            FROM audiences_membershipchange
            WHERE segment_id = %s AND occurred_at >= %s
            GROUP BY day
            """,
            [
                str(tz),
                segment.pk,
                timezone.make_aware(timezone.datetime.combine(first, timezone.datetime.min.time()), tz),
            ],
        )
        per_day = {day: (added, removed) for day, added, removed in cursor.fetchall()}
    points: list[DayPoint] = []
    size = segment.size
    for offset in range(days):
        day = today - timedelta(days=offset)
        added, removed = per_day.get(day, (0, 0))
        points.append(DayPoint(day=day, size=size, added=added, removed=removed))
        size -= added - removed  # the size at the end of the previous day
    return list(reversed(points))
