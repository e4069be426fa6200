import threading

import pytest
from django.db import connection, connections

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes, replace_members
from audiences.models import MembershipChange, Profile, Segment, SegmentMember

PUSH = Cause(source="push", type="inbound_batch", id=1)


@pytest.fixture
def segment(acme):
    return Segment.objects.create(workspace=acme, name="Power users", type="partner_amplitude", external_id="c1")


def people(acme, *names):
    return [resolve(acme.pk, "user_id", [name]).profile_ids[name] for name in names]


def test_add_writes_one_ledger_row_per_real_change(acme, segment):
    a, b = people(acme, "a", "b")
    assert apply_changes(segment, add=[a, b, a], cause=PUSH).added == 2
    assert apply_changes(segment, add=[a], cause=PUSH).added == 0  # already in: nothing written
    assert MembershipChange.objects.filter(segment=segment, action="added").count() == 2
    segment.refresh_from_db()
    assert segment.size == 2 and segment.last_changed_at is not None


def test_removing_a_non_member_writes_nothing(acme, segment):
    (a,) = people(acme, "a")
    assert apply_changes(segment, remove=[a], cause=PUSH).removed == 0
    assert not MembershipChange.objects.exists()


def test_add_then_remove_leaves_two_rows_and_size_zero(acme, segment):
    (a,) = people(acme, "a")
    apply_changes(segment, add=[a], cause=PUSH)
    apply_changes(segment, remove=[a], cause=PUSH)
    actions = list(MembershipChange.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["added", "removed"]
    segment.refresh_from_db()
    assert segment.size == 0 and not SegmentMember.objects.exists()


def test_partner_sync_properties(acme, segment):
    (a,) = people(acme, "a")
    apply_changes(segment, add=[a], cause=PUSH)
    change = MembershipChange.objects.get()
    assert change.partner_sync_properties() == {
        "Partner Segment Name": "Power users",
        "Action": "Added",
        "Partner Segment ID": "c1",
        "Source": "Push",
        "Partner Name": "Amplitude",
    }


def test_replace_members_diffs_against_a_snapshot_table(acme, segment):
    a, b, c = people(acme, "a", "b", "c")
    apply_changes(segment, add=[a, b], cause=PUSH)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE snap (profile_id bigint) ON COMMIT DROP")
        cursor.execute("INSERT INTO snap VALUES (%s), (%s), (%s)", [b, c, c])
        applied = replace_members(segment, "snap", cause=Cause("import", "import_run", 7))
    assert (applied.added, applied.removed) == (1, 1)
    assert set(SegmentMember.objects.values_list("profile_id", flat=True)) == {b, c}
    assert MembershipChange.objects.filter(cause_type="import_run", cause_id=7).count() == 2
    segment.refresh_from_db()
    assert segment.size == 2


def test_replace_members_never_nests_loops_when_member_statistics_are_stale(acme, segment):
    """The members table analyzed while empty, then filled by a first import: the planner believes
    the segment has one member and, for the exit diff, would loop over the whole snapshot once per
    real member (a re-import straight after a first 1M import ran for over ten minutes)."""
    plans = []

    def explain_snapshot_diffs(execute, sql, params, many, context):
        if "FROM snap s" in sql:
            with context["connection"].connection.cursor() as raw:  # the same session, past the wrappers
                raw.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(row[0] for row in raw.fetchall()))
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audiences_profile (workspace_id, properties, event_counts, created_at, updated_at)"
            " SELECT %s, '{}', '{}', now(), now() FROM generate_series(1, 3000)",
            [acme.pk],
        )
        cursor.execute("SELECT id FROM audiences_profile WHERE workspace_id = %s ORDER BY id", [acme.pk])
        ids = [row[0] for row in cursor.fetchall()]
        # Statistics of a table that has pages but (as far as ANALYZE knows) no rows: an earlier
        # segment's members deleted (here by this transaction), then analyzed.
        apply_changes(segment, add=ids, cause=PUSH)
        cursor.execute("DELETE FROM audiences_segmentmember WHERE segment_id = %s", [segment.pk])
        cursor.execute("ANALYZE audiences_segmentmember")
        cursor.execute(
            "INSERT INTO audiences_segmentmember (segment_id, profile_id, added_at)"
            " SELECT %s, unnest(%s::bigint[]), now()",
            [segment.pk, ids],
        )  # a first import's worth
        cursor.execute(
            "CREATE TEMP TABLE snap ON COMMIT DROP AS SELECT unnest(%s::bigint[]) AS profile_id", [ids[100:]]
        )
        cursor.execute("ANALYZE snap")
        with connection.execute_wrapper(explain_snapshot_diffs):
            applied = replace_members(segment, "snap", cause=Cause("import", "import_run", 8))
    assert (applied.added, applied.removed) == (0, 100)
    assert len(plans) == 2 and not any("Nested Loop" in plan for plan in plans), plans
    with connection.cursor() as cursor:  # and the session's planner is as it was
        cursor.execute("SHOW enable_nestloop")
        assert cursor.fetchone()[0] == "on"


def test_replace_members_refuses_an_unsafe_table_name(acme, segment):
    with pytest.raises(ValueError):
        replace_members(segment, "snap; drop table x", cause=PUSH)


def test_identity_resolution_creates_once_and_reports_blocked_values(acme):
    result = resolve(
        acme.pk, "user_id", ["u1", "u1", "null", "", "0", "-1", "00000000-0000-0000-0000-000000000000", 42, True]
    )
    assert set(result.profile_ids) == {"u1", "42"} and result.created == 2
    reasons = {position: reason for position, _, reason in result.invalid}
    assert set(reasons) == {2, 3, 4, 5, 6, 8}
    assert "blocked" in reasons[2] and "not a string or number" in reasons[8]
    again = resolve(acme.pk, "user_id", ["u1"])
    assert again.created == 0 and again.profile_ids["u1"] == result.profile_ids["u1"]
    assert Profile.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_resolution_and_adds_create_one_person_and_one_row(acme, segment):
    """Two transactions racing on the same new id and the same membership: one winner each time."""
    barrier = threading.Barrier(2)
    results = []

    def worker():
        try:
            barrier.wait()
            profile_id = resolve(acme.pk, "user_id", ["racer"]).profile_ids["racer"]
            results.append((profile_id, apply_changes(segment, add=[profile_id], cause=PUSH).added))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({profile_id for profile_id, _ in results}) == 1
    assert sorted(added for _, added in results) == [0, 1]
    assert Profile.objects.count() == 1 and MembershipChange.objects.count() == 1
