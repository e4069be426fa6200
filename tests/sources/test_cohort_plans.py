"""A cohort file that names a key twice takes the load's careful path (issue 16.5). Its statements
must not depend on statistics: right after a first import, or on a database never analyzed, the
planner's figures for audiences_identity do not include this workspace's people, and a join that
trusts them becomes a nested loop over the whole workspace for every row (minutes at 20,000 rows).

The plans are read with EXPLAIN (no timing here: speed is bench/cohort_import.py's, which has a
repeated-keys case)."""

import re
import threading

import pytest
from django.db import IntegrityError, connection

from audiences.identity import resolve
from audiences.models import Identity, Profile, Segment, SegmentMember
from integrations.sources.models import RunStatus
from tests.sources.test_cohort_import import members_of, run_now

AUDIENCE_TABLES = ("audiences_identity", "audiences_profile", "audiences_segmentmember", "audiences_membershipchange")
PARAMETERIZED = re.compile(r"\b[a-z_][a-z0-9_]*\.[a-z_]")  # alias.column: a value from the outer side


def never_analyzed() -> None:
    """The audience tables as a fresh database has them: no table or column statistics (PostgreSQL 18)."""
    with connection.cursor() as cursor:
        for table in AUDIENCE_TABLES:
            cursor.execute("SELECT pg_clear_relation_stats('public', %s)", [table])
            cursor.execute(
                "SELECT pg_clear_attribute_stats('public', %s, attname, false) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [table, table],
            )


def analyzed_before_this_workspace(globex) -> None:
    """Statistics taken when the tables held another workspace's people only (as autovacuum leaves
    them after that workspace's import): they say this workspace has next to nobody."""
    resolve(globex.pk, "amplitude_id", [str(n) for n in range(3000)])
    with connection.cursor() as cursor:
        for table in AUDIENCE_TABLES:
            cursor.execute(f"ANALYZE {table}")


def whole_table_scans(node: dict) -> list[str]:
    """Scans under `node` that read a whole table (or a whole workspace) rather than probe by key."""
    found = []
    kind = node["Node Type"]
    if kind in ("Seq Scan", "Materialize", "CTE Scan", "Subquery Scan", "Function Scan"):
        found.append(f"{kind} {node.get('Relation Name', node.get('CTE Name', ''))}".strip())
    elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and not PARAMETERIZED.search(
        node.get("Index Cond", "")
    ):
        found.append(f"{kind} on {node.get('Index Name')} ({node.get('Index Cond', 'no condition')})")
    for child in node.get("Plans", []):
        found += whole_table_scans(child)
    return found


def nested_loops_over_tables(node: dict) -> list[str]:
    """Nested loops whose inner side scans a whole table for every outer row."""
    bad = []
    if node["Node Type"] == "Nested Loop":
        inner = next(child for child in node["Plans"] if child.get("Parent Relationship") == "Inner")
        if scans := whole_table_scans(inner):
            bad.append(f"Nested Loop over {', '.join(scans)}")
    for child in node.get("Plans", []):
        bad += nested_loops_over_tables(child)
    return bad


class PlanRecorder:
    """EXPLAINs every statement the load runs once its plain identity insert met the repeat."""

    EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE TEMP TABLE")

    def __init__(self) -> None:
        self.repeating = False
        self.plans: list[tuple[str, dict]] = []

    def __call__(self, execute, sql, params, many, context):
        text = " ".join(sql.split())
        if self.repeating and text.startswith(self.EXPLAINABLE) and (" AS " in text or not text.startswith("CREATE")):
            execute("EXPLAIN (FORMAT JSON) " + sql, params, many, context)
            self.plans.append((text, context["cursor"].fetchone()[0][0]["Plan"]))
        try:
            return execute(sql, params, many, context)
        except IntegrityError:
            self.repeating = self.repeating or text.startswith("INSERT INTO audiences_identity")
            raise


@pytest.mark.parametrize("statistics", ["never analyzed", "analyzed before this workspace's people"])
def test_the_repeated_key_path_never_loops_over_a_whole_table(amp, cohort_job, globex, statistics):
    if statistics == "never analyzed":
        never_analyzed()
    else:
        analyzed_before_this_workspace(globex)
    members = [{"amplitude_id": n, "user_id": f"u{n}", "city": "Lyon"} for n in range(1, 2001)]
    members.insert(1500, {"amplitude_id": 7, "user_id": "u7", "city": "Nice"})  # one key named twice
    amp.sandbox.add_cohort("rep1", "Repeats", members=members)
    recorder = PlanRecorder()
    with connection.execute_wrapper(recorder):
        run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert recorder.repeating and len(recorder.plans) >= 5, "the careful path did not run"
    bad = [(sql[:120], loops) for sql, plan in recorder.plans if (loops := nested_loops_over_tables(plan))]
    assert not bad, bad
    # And the outcome is the usual one: one person per key, the last row's properties.
    assert run.counts["profiles_created"] == 2000 and run.counts["entered"] == 2000
    assert Profile.objects.filter(workspace=cohort_job.workspace).count() == 2000
    twice = Profile.objects.get(workspace=cohort_job.workspace, identities__kind="amplitude_id", identities__value="7")
    assert twice.properties["city"] == "Nice"
    assert len(members_of(Segment.objects.get(external_id="rep1"))) == 2000


@pytest.mark.django_db(transaction=True)
def test_a_key_another_load_took_meanwhile_goes_to_its_person(amp, cohort_job, monkeypatch):
    """Between matching and creating people, another transaction creates one of the file's people:
    the load gives that key's rows the other transaction's person and leaves no profile behind."""
    from audiences import cohort_load

    create_people = cohort_load._create_people
    holder = {}

    def meanwhile(cursor, params):
        def create_elsewhere():  # a thread: its own connection, committing at once
            try:
                holder["id"] = resolve(params["workspace"], "amplitude_id", ["12"]).profile_ids["12"]
            finally:
                connection.close()

        thread = threading.Thread(target=create_elsewhere)
        thread.start()
        thread.join()
        return create_people(cursor, params)

    monkeypatch.setattr(cohort_load, "_create_people", meanwhile)
    amp.sandbox.add_cohort("tk1", "Taken", members=[{"amplitude_id": n, "user_id": ""} for n in range(10, 20)])
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["profiles_created"] == 9 and run.counts["entered"] == 10
    assert Identity.objects.get(kind="amplitude_id", value="12").profile_id == holder["id"]
    assert SegmentMember.objects.filter(segment__external_id="tk1", profile_id=holder["id"]).exists()
    assert Profile.objects.filter(workspace=cohort_job.workspace).count() == 10  # no profile left behind
