"""An advisory lock held for longer than one transaction, on a connection of its own.

Some work must run alone for longer than one transaction: an import run (a transaction per
cohort or export window), a Kochava stream pass. Its lock is taken with pg_try_advisory_xact_lock
in a transaction that a second connection keeps open while the work runs:

- it holds behind PgBouncer in transaction mode, where a session lock would not: the pooler pins
  one server connection to a client for as long as its transaction lasts, whereas a session lock
  taken by one statement stays on whichever pooled server connection ran it, and its unlock may
  run on another (docs/deployment.md);
- the work's own connection stays free to commit as often as it needs;
- a worker that dies closes its sockets, PostgreSQL (or PgBouncer, which closes a server
  connection left inside a transaction) ends the transaction, and the lock goes with it, so
  pg_locks still tells a live run from a dead one (integrations.sources.runs.is_alive).

The open transaction runs one statement and takes no snapshot after it, so it holds back no VACUUM.
"""

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections


@contextmanager
def held_lock(key: int | str, *, wait_seconds: float = 0.0) -> Iterator[bool]:
    """Try to take advisory lock `key` (a bigint, or a text hashed with hashtextextended) for as long
    as the block runs, retrying for up to `wait_seconds`. Yields whether it was taken."""
    holder = connections.create_connection(DEFAULT_DB_ALIAS)
    expression = "%s::bigint" if isinstance(key, int) else "hashtextextended(%s, 0)"
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            # An operator's idle_in_transaction_session_timeout must not end the lock while the work runs.
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            deadline = time.monotonic() + wait_seconds
            while True:
                cursor.execute(f"SELECT pg_try_advisory_xact_lock({expression})", [key])
                acquired = cursor.fetchone()[0]
                if acquired or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        yield acquired
    finally:
        # ROLLBACK waits for the server: the lock is free when this returns. A bare close() behind
        # PgBouncer leaves the rollback to the pooler, and the next taker may lose the race. On a
        # broken connection close() alone ends the transaction anyway.
        with contextlib.suppress(DatabaseError):
            holder.rollback()
        holder.close()
