"""The people lock of a workspace: what keeps an erasure (audiences.erasure) and writers of people
data from interleaving.

Writers take it shared (`hold_people`) in the transaction in which they read identities to write
with: identity lookups and merges, event loads, cohort imports, sync planning, the Kochava stream.
An erasure takes it exclusively, so it waits for writers in flight and later writers wait for it.
Senders that read rows and then talk to a partner for seconds hold it across their calls
(`SendGate`). Two advisory locks per workspace: PEOPLE_LOCK (that one) and SERIAL_LOCK, held by an
erasure for its whole length, which tells a sender that one is waiting.
"""

from django.db import connection

PEOPLE_LOCK = "people:{}"
SERIAL_LOCK = "erasure:{}"


def lock(cursor, function: str, name: str, workspace_id: int) -> object:
    """Call an advisory-lock function on the workspace's lock `name` (PEOPLE_LOCK or SERIAL_LOCK)."""
    cursor.execute(f"SELECT {function}(hashtextextended(%s, 0))", [name.format(workspace_id)])
    return cursor.fetchone()[0]


def hold_people(workspace_id: int) -> None:
    """Writers of people data call this in their transaction before reading identities to write with.

    Shared: writers never wait for each other, only for an erasure of the same workspace, which in
    turn waits for them. Without it, a writer that read a person just before the erasure removed
    them would commit rows naming a person who no longer exists.
    """
    with connection.cursor() as cursor:
        lock(cursor, "pg_advisory_xact_lock_shared", PEOPLE_LOCK, workspace_id)


class SendGate:
    """The people lock for a sender that reads rows, then talks to a partner for seconds.

    Held (session-level, shared) while any batch is in flight; the sender re-reads a batch's rows
    under it before sending, so a row an erasure removed after the sender read it is never sent.
    While an erasure is waiting the sender submits nothing new, lets its batches finish and releases
    the lock: without that pause a busy sync, always holding the lock, would keep the erasure out for
    its whole run.
    """

    def __init__(self, workspace_id: int):
        self.workspace_id = workspace_id
        self.held = False

    def erasure_waiting(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT CASE WHEN pg_try_advisory_lock_shared(hashtextextended(%(k)s, 0)) "
                "THEN NOT pg_advisory_unlock_shared(hashtextextended(%(k)s, 0)) ELSE true END",
                {"k": SERIAL_LOCK.format(self.workspace_id)},
            )
            return cursor.fetchone()[0]

    def hold(self) -> None:
        if not self.held:
            with connection.cursor() as cursor:
                lock(cursor, "pg_advisory_lock_shared", PEOPLE_LOCK, self.workspace_id)
            self.held = True

    def release(self) -> None:
        if self.held:
            with connection.cursor() as cursor:
                lock(cursor, "pg_advisory_unlock_shared", PEOPLE_LOCK, self.workspace_id)
            self.held = False
