"""The one way bulk INSERT … SELECTs of the ledger and the importers settle repeated keys."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, IntegrityError, transaction


def insert_plain_first(cursor, plain: str, careful: str, params) -> None:
    """Run the INSERT `plain`; if it meets a unique violation, undo it and run `careful` instead.

    A plain INSERT costs about a third less than ON CONFLICT's speculative insertion into every
    unique index, and a bulk load nearly never repeats a key. When one does (a value repeated in
    the input, a replay, a concurrent writer), the plain attempt is undone by a savepoint and
    `careful` (the same statement with ON CONFLICT DO NOTHING, in the order that decides which
    copy is kept) settles it. The cursor then holds `careful`'s result, otherwise `plain`'s.
    """
    try:
        with transaction.atomic():
            cursor.execute(plain, params)
    except IntegrityError:
        cursor.execute(careful, params)


def scratch_table(cursor, name: str, columns: str) -> str:
    """A table for one load's raw rows, `columns` being its "(…)" definition; returns its name.

    An UNLOGGED table of this backend's own (cc_<name>_<backend pid>) when the role may create
    one: parallel workers can scan it (never a temporary table), so the per-row work of the
    statement that reads it runs on every core. It is created inside the load's transaction and
    dropped by the load before commit, so no other session ever sees it and a failed load leaves
    nothing behind. Without the right to create tables, the temporary table `name`.
    """
    cursor.execute("SELECT pg_backend_pid()")  # the server's own: right behind a connection pooler too
    shared = f"cc_{name}_{int(cursor.fetchone()[0])}"
    try:
        with transaction.atomic():
            cursor.execute(f"DROP TABLE IF EXISTS {shared}")
            cursor.execute(f"CREATE UNLOGGED TABLE {shared} {columns}")
        return shared
    except DatabaseError:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
        cursor.execute(f"CREATE TEMP TABLE {name} {columns} ON COMMIT DROP")
        return name


@contextmanager
def parallel_handoff(cursor) -> Iterator[None]:
    """Statements inside tell the planner that parallel workers handing rows back is cheap.

    For a statement whose per-row work (parsing, cleaning, building jsonb) is the cost and whose
    rows this backend writes: its workers read a scratch_table and do that work on every core.
    Transaction-local, and set back to the defaults afterwards.
    """
    cursor.execute("SET LOCAL parallel_setup_cost = 0")
    cursor.execute("SET LOCAL parallel_tuple_cost = 0.001")
    yield
    cursor.execute("SET LOCAL parallel_setup_cost TO DEFAULT")
    cursor.execute("SET LOCAL parallel_tuple_cost TO DEFAULT")
