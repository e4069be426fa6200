"""Amplitude's monthly cohort-download budget, counted per project per UTC calendar month.

`consume` is one conditional UPDATE (… WHERE used + n <= limit RETURNING), so concurrent workers
can never overspend: of two racing requests for the last download exactly one gets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone


class QuotaExceeded(Exception):
    pass


@dataclass(frozen=True)
class Budget:
    month: date
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def as_dict(self) -> dict:
        return {
            "month": self.month.strftime("%Y-%m"),
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
        }


def month_of(now: datetime | None = None) -> date:
    now = (now or timezone.now()).astimezone(UTC)
    return date(now.year, now.month, 1)


def _ensure_row(cursor, project_id: int, month: date) -> None:
    cursor.execute(
        """INSERT INTO sources_downloadquota (project_id, month, used, "limit") VALUES (%s, %s, 0, %s)
           ON CONFLICT (project_id, month) DO NOTHING""",
        [project_id, month, settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH],
    )


def budget(project, now: datetime | None = None) -> Budget:
    month = month_of(now)
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT used, "limit" FROM sources_downloadquota WHERE project_id = %s AND month = %s', [project.pk, month]
        )
        row = cursor.fetchone()
    used, limit = row if row else (0, settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH)
    return Budget(month, limit, used)


def consume(project, n: int = 1, now: datetime | None = None) -> int:
    """Spend `n` downloads of this month's budget; returns what remains. Raises QuotaExceeded."""
    month = month_of(now)
    with connection.cursor() as cursor:
        _ensure_row(cursor, project.pk, month)
        cursor.execute(
            """UPDATE sources_downloadquota SET used = used + %s
               WHERE project_id = %s AND month = %s AND used + %s <= "limit"
               RETURNING "limit" - used""",
            [n, project.pk, month, n],
        )
        row = cursor.fetchone()
    if row is None:
        raise QuotaExceeded(refusal(budget(project, now), n))
    return row[0]


def check(project, needed: int, now: datetime | None = None) -> Budget:
    """Raise QuotaExceeded when `needed` downloads do not fit the remaining budget."""
    current = budget(project, now)
    if needed > current.remaining:
        raise QuotaExceeded(refusal(current, needed))
    return current


def refusal(current: Budget, needed: int) -> str:
    return (
        f"Amplitude allows {current.limit} cohort downloads a month per project; {current.used} are used in "
        f"{current.month:%B %Y}, {current.remaining} remain, and this run needs {needed}. "
        f"The budget resets on the 1st (UTC)."
    )
