"""Heartbeats on runs: how the console tells a run whose worker died from one still working.

The worker executing a run (an import run, a sync run, a Kochava stream pass) keeps a thread that
touches the run's heartbeat column every RUN_HEARTBEAT_SECONDS, on a database connection of its own
(the run's own connection may sit inside a long load transaction). A run whose heartbeat is older
than RUN_LOST_SECONDS is lost: its worker was killed, ran out of memory or lost its host. Beat's
lost-run check (config.scheduler.find_lost_runs) says so on the run within seconds, instead of
waiting for the broker's visibility timeout (hours) to hand the task to another worker.

The beat is written with SKIP LOCKED: when the run's own transaction holds the row (an import
writing its counts before it commits) the beat is skipped, never waited for; the lost-run check
skips locked rows too, so a row locked by a live transaction is never declared lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Self

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

logger = logging.getLogger(__name__)


class RunHeartbeat:
    """Touch `table.column` of row `pk` now and then while the block runs.

    `owned` is an SQL condition (with %s parameters `owned_params`) that holds while the run is still
    this worker's: when a beat finds it false (the run was declared lost and handed to another worker,
    or finished elsewhere), `lost` is set and the work should stop sending.
    """

    def __init__(
        self, table: str, pk: int, *, column: str = "heartbeat_at", owned: str = "true", owned_params=()
    ) -> None:
        self.table, self.pk, self.column = table, pk, column
        self.owned, self.owned_params = owned, list(owned_params)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection = None

    def __enter__(self) -> Self:
        if connection.in_atomic_block:
            # Inside an outer transaction (the tests' transactional fixtures) another connection
            # cannot see the run: nothing to beat, and no worker to lose.
            return self
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.table}-{self.pk}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.beat()
                if self._stop.wait(settings.RUN_HEARTBEAT_SECONDS):
                    break
        finally:
            if self._connection is not None:
                self._connection.close()

    def beat(self) -> None:
        try:
            if self._connection is None:
                self._connection = connections.create_connection(DEFAULT_DB_ALIAS)
                self._connection.set_autocommit(True)
            with self._connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {self.table} SET {self.column} = now() WHERE id = ("
                    f"SELECT id FROM {self.table} WHERE id = %s AND ({self.owned}) FOR UPDATE SKIP LOCKED)",
                    [self.pk, *self.owned_params],
                )
                if cursor.rowcount:
                    return
                # Not touched: locked by the run's own transaction (fine), or no longer ours.
                cursor.execute(f"SELECT ({self.owned}) FROM {self.table} WHERE id = %s", [*self.owned_params, self.pk])
                row = cursor.fetchone()
                if row is None or not row[0]:
                    self.lost.set()
        except DatabaseError:  # the database away for a moment: the next beat tries again
            logger.warning("heartbeat of %s %s could not be written", self.table, self.pk, exc_info=True)
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def lost_before(now: dt.datetime) -> dt.datetime:
    """Runs whose last heartbeat is older than this are lost."""
    return now - dt.timedelta(seconds=settings.RUN_LOST_SECONDS)


def stopped_at(heartbeat: dt.datetime | None, now: dt.datetime, tz: dt.tzinfo = dt.UTC) -> str:
    """'15:05 CET': when the lost worker was last heard of (the run's last heartbeat), in `tz`, the
    workspace's zone (the note is stored as text, so it is written in the zone its readers use)."""
    return clock_in(heartbeat or now, tz)


def clock_in(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """'15:05 CET': a time of day in `tz`, labelled with the zone's abbreviation (or its offset)."""
    local = moment.astimezone(tz)
    return f"{local:%H:%M} {local.tzname() or local.strftime('%z')}"
