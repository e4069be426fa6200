"""Amplitude's list-based cohort sync, replayed from fixtures."""

import threading

import pytest
from django.db import connection, connections

from audiences.models import Identity, MembershipChange, Segment, SegmentMember
from integrations.inbound.models import BatchStatus, InboundBatch
from tests.inbound.conftest import drain, fixture, push


def members(segment_id) -> set[str]:
    return set(
        Identity.objects.filter(profile__memberships__segment_id=segment_id, kind="user_id").values_list(
            "value", flat=True
        )
    )


def test_lists_creates_the_partner_segment_once(acme, acme_inbound_key):
    body = fixture("amplitude_cohort_sync/lists_create.json")
    first = push("/api/amplitude/lists", body, acme_inbound_key)
    again = push("/api/amplitude/lists", body, acme_inbound_key)
    assert first.status_code == 200 and first.json() == again.json()
    segment = Segment.objects.get(pk=first.json()["listId"])
    assert (segment.workspace, segment.type, segment.external_id, segment.name) == (
        acme,
        "partner_amplitude",
        "26umsb5",
        "Power users",
    )
    assert segment.get_type_display() == "Partner - Amplitude"


def test_lists_accepts_the_bare_name_form(acme, acme_inbound_key):
    response = push(
        "/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create_bare_name.json"), acme_inbound_key
    )
    segment = Segment.objects.get(pk=response.json()["listId"])
    assert (segment.external_id, segment.name) == ("123", "cohort name")


def test_add_then_remove_apply_in_order_with_blocked_values_reported(acme, acme_inbound_key, list_id):
    added = push(
        f"/api/amplitude/lists/{list_id}/add", fixture("amplitude_cohort_sync/list_add.json"), acme_inbound_key
    )
    removed = push(
        f"/api/amplitude/lists/{list_id}/remove", fixture("amplitude_cohort_sync/list_remove.json"), acme_inbound_key
    )
    assert added.status_code == removed.status_code == 200
    invalid = added.json()["invalid"]
    assert [row["position"] for row in invalid] == [4, 5, 6, 7, 8]
    assert all("blocked" in row["reason"] for row in invalid)
    drain()
    assert members(list_id) == {"u1", "u3"}
    # Blocked values never became people; an unknown id being removed did not either.
    assert not Identity.objects.filter(value__in=["null", "", "anonymous", "never-seen"]).exists()
    ledger = list(MembershipChange.objects.order_by("id").values_list("action", flat=True))
    assert ledger == ["added"] * 4 + ["removed"] * 2
    batch = InboundBatch.objects.get(pk=added.json()["batchId"])
    assert batch.status == BatchStatus.APPLIED and batch.invalid_count == 5 and batch.added == 4
    assert Segment.objects.get(pk=list_id).size == 2


def test_a_replay_is_acknowledged_and_applies_nothing(acme, acme_inbound_key, list_id):
    body = fixture("amplitude_cohort_sync/list_add.json")
    first = push(f"/api/amplitude/lists/{list_id}/add", body, acme_inbound_key)
    drain()
    replay = push(f"/api/amplitude/lists/{list_id}/add", body, acme_inbound_key)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert replay.json()["batchId"] == first.json()["batchId"]
    assert drain() == 0
    assert InboundBatch.objects.count() == 1 and MembershipChange.objects.count() == 4


def test_the_same_ids_in_a_new_request_write_no_second_ledger_row(acme, acme_inbound_key, list_id):
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["a", "b"]}, acme_inbound_key)
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["b", "a"]}, acme_inbound_key)
    drain()
    assert MembershipChange.objects.count() == 2 and Segment.objects.get(pk=list_id).size == 2


@pytest.mark.django_db(transaction=True)
def test_eight_replays_at_once_make_one_batch(acme, acme_inbound_key, list_id):
    body = {"userIds": [f"p{n}" for n in range(500)]}
    answers, barrier = [], threading.Barrier(8)

    def send():
        barrier.wait()
        try:
            answers.append(push(f"/api/amplitude/lists/{list_id}/add", body, acme_inbound_key))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.json()["batchId"] for a in answers}) == 1
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    drain()  # eager mode applied on commit already; whatever is left is applied here
    assert InboundBatch.objects.get().status == BatchStatus.APPLIED
    assert MembershipChange.objects.count() == 500 and SegmentMember.objects.count() == 500


@pytest.mark.django_db(transaction=True)
def test_concurrent_list_creations_make_one_segment(acme, acme_inbound_key):
    answers, barrier = [], threading.Barrier(6)

    def create():
        barrier.wait()
        try:
            answers.append(
                push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key)
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["listId"] for a in answers}) == 1 and Segment.objects.count() == 1


def test_a_big_request_of_ten_thousand_ids_is_accepted(acme, acme_inbound_key, list_id):
    response = push(
        f"/api/amplitude/lists/{list_id}/add", {"userIds": list(range(1, 10_001))}, acme_inbound_key, gzipped=True
    )
    assert response.status_code == 200 and response.json()["received"] == 10_000
    drain()
    assert Segment.objects.get(pk=list_id).size == 10_000


def test_numeric_and_property_identity_kinds_come_from_the_key(acme):
    from integrations.models import ApiKey

    _, raw = ApiKey.issue(acme, scope="inbound", name="emails", identity_kind="email")
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), raw).json()["listId"]
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["ada@example.com"]}, raw)
    drain()
    assert Identity.objects.get().kind == "email"


def _three_batches(list_id, key):
    """add u1 u2, remove u1, add u1 u3: the ordered result is {u1, u2, u3} whatever was prepared ahead."""
    for path, ids in (("add", ["u1", "u2"]), ("remove", ["u1"]), ("add", ["u1", "u3"])):
        assert push(f"/api/amplitude/lists/{list_id}/{path}", {"userIds": ids}, key).status_code == 200
    return list(InboundBatch.objects.order_by("id"))


def _assert_ordered_outcome(list_id, batches):
    assert members(list_id) == {"u1", "u2", "u3"}
    ledger = list(MembershipChange.objects.order_by("id").values_list("action", flat=True))
    assert ledger == ["added", "added", "removed", "added", "added"]
    created = {b.pk: b.profiles_created for b in InboundBatch.objects.all()}
    assert [created[b.pk] for b in batches] == [2, 0, 1]  # each person counted once, by the batch that made them


def test_identities_prepared_ahead_of_the_ordered_apply_change_nothing_of_the_outcome(acme, acme_inbound_key, list_id):
    from integrations.inbound.apply import prepare_next

    batches = _three_batches(list_id, acme_inbound_key)
    assert prepare_next(acme.pk, list_id) and prepare_next(acme.pk, list_id)
    assert not prepare_next(acme.pk, list_id)  # removes are never prepared: they create nobody
    assert [b.prepared for b in InboundBatch.objects.order_by("id")] == [True, False, True]
    assert set(Identity.objects.values_list("value", flat=True)) == {"u1", "u2", "u3"}
    assert not MembershipChange.objects.exists()  # people exist; membership waits for the ordered apply
    drain()
    _assert_ordered_outcome(list_id, batches)


def test_an_applier_that_finds_the_segment_busy_prepares_later_batches_and_leaves_without_waiting(
    acme, acme_inbound_key, list_id
):
    """It never waits for the busy list (its worker is free for other lists and identifies): the
    holder applies what is pending, in order, using what was prepared."""
    import psycopg

    from integrations.inbound.apply import _lock_key, apply_pending
    from tests.conftest import test_database_url

    batches = _three_batches(list_id, acme_inbound_key)
    other = psycopg.connect(test_database_url(), autocommit=True)  # another worker, applying this segment
    other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [_lock_key(acme.pk, list_id)])
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # waiting for the lock would fail the test, not hang it
    try:
        assert apply_pending(acme.pk, list_id) == 0
    finally:
        other.execute("SELECT pg_advisory_unlock_all()")  # the holder lets go
        other.close()
    assert all(b.prepared == (b.endpoint == "list_add") for b in InboundBatch.objects.all())
    assert not MembershipChange.objects.exists()
    assert apply_pending(acme.pk, list_id) == 3
    _assert_ordered_outcome(list_id, batches)


@pytest.mark.django_db(transaction=True)
def test_the_holder_applies_a_batch_that_arrived_while_it_held_the_scope(acme, acme_inbound_key):
    """A batch committed while the scope's lock is held, whose own apply task (run eagerly at its
    commit, on another connection) found the scope busy and left, is applied by the holder, which
    looks again after letting go. The hook only opens the window: lock, push and task are real."""
    from integrations.inbound import apply

    list_id = push("/api/amplitude/lists", {"name": "[Amplitude] Late: l1"}, acme_inbound_key).json()["listId"]
    real_apply_next, arrived = apply._apply_next, []

    def push_from_another_worker():
        try:
            arrived.append(push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["late"]}, acme_inbound_key))
        finally:
            connections.close_all()

    def apply_next_while_a_push_arrives(workspace_id, segment_id):
        outcome = real_apply_next(workspace_id, segment_id)
        if outcome is None and not arrived:  # nothing left, the lock still held by this transaction
            sender = threading.Thread(target=push_from_another_worker)
            sender.start()
            sender.join(timeout=15)  # (an applier that waited for the lock would never let it finish)
        return outcome

    from config.celery import app

    app.conf.task_always_eager = False
    try:
        push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["early"]}, acme_inbound_key)
    finally:
        app.conf.task_always_eager = True
    apply._apply_next = apply_next_while_a_push_arrives
    try:
        assert apply.apply_pending(acme.pk, list_id) == 2
    finally:
        apply._apply_next = real_apply_next
    assert arrived[0].status_code == 200
    assert InboundBatch.objects.get(pk=arrived[0].json()["batchId"]).prepared  # its own task prepared it, then left
    assert members(list_id) == {"early", "late"}
