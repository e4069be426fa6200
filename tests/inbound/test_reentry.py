"""Re-entries apply, retries do not (issue 16.1).

Amplitude's bodies carry no timestamp or message id: add ["churn-1"] -> remove -> add sends the same
body twice, and so does a retry. A repeat is a retry only when nothing that could undo it arrived in
between; otherwise it is applied again, in arrival order, which is state-based and idempotent.
"""

import itertools
import threading

import pytest
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.models import Identity, MembershipChange, Segment
from integrations.inbound.models import BatchStatus, InboundBatch
from tests.inbound.conftest import drain, push


def members(segment_id) -> set[str]:
    return set(
        Identity.objects.filter(profile__memberships__segment_id=segment_id, kind="user_id").values_list(
            "value", flat=True
        )
    )


def identify(user: str, cohort: str, inside: bool) -> dict:
    return {"type": "identify", "userId": user, "traits": {f"[Amplitude] Trait cohort: {cohort}": inside}}


def test_add_remove_add_of_identical_bodies_ends_inside(acme, acme_inbound_key, list_id):
    for path in ("add", "remove", "add"):
        response = push(f"/api/amplitude/lists/{list_id}/{path}", {"userIds": ["churn-1"]}, acme_inbound_key)
        assert response.status_code == 200 and response.json()["duplicate"] is False
    drain()
    assert members(list_id) == {"churn-1"}
    assert list(MembershipChange.objects.order_by("id").values_list("action", flat=True)) == [
        "added",
        "removed",
        "added",
    ]
    assert Segment.objects.get(pk=list_id).size == 1


def test_identify_true_false_true_ends_inside(acme, acme_inbound_key):
    for inside in (True, False, True):
        response = push("/api/amplitude/identify", identify("u7", "c7", inside), acme_inbound_key)
        assert response.json()["duplicate"] is False
    drain()
    assert members(Segment.objects.get(external_id="c7").pk) == {"u7"}
    assert MembershipChange.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_eight_retries_four_at_once_between_other_adds_apply_once(acme, acme_inbound_key):
    """Amplitude retries a request up to 8 times, 4 in parallel, while its other requests of the
    same sync go on: every copy answers the one batch, and the ledger counts each person once."""
    list_id = push("/api/amplitude/lists", {"name": "[Amplitude] Churn: c9"}, acme_inbound_key).json()["listId"]
    body = {"userIds": [f"p{n}" for n in range(300)]}
    first = push(f"/api/amplitude/lists/{list_id}/add", body, acme_inbound_key).json()["batchId"]
    answers = []

    def send():
        try:
            answers.append(push(f"/api/amplitude/lists/{list_id}/add", body, acme_inbound_key))
        finally:
            connections.close_all()

    for round_ in range(2):
        # Another request of the same sync arrives between the rounds of retries.
        push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [f"other-{round_}"]}, acme_inbound_key)
        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [a.status_code for a in answers] == [200] * 8
    assert {a.json()["batchId"] for a in answers} == {first} and all(a.json()["duplicate"] for a in answers)
    drain()
    assert InboundBatch.objects.filter(status=BatchStatus.APPLIED).count() == 3
    assert MembershipChange.objects.filter(segment_id=list_id).count() == 302
    assert Segment.objects.get(pk=list_id).size == 302


def test_a_retry_after_a_remove_of_the_list_is_applied_again(acme, acme_inbound_key, list_id):
    """After a remove, the same add is the person coming back, not a retry."""
    add = {"userIds": ["a", "b"]}
    push(f"/api/amplitude/lists/{list_id}/add", add, acme_inbound_key)
    push(f"/api/amplitude/lists/{list_id}/remove", {"userIds": ["b"]}, acme_inbound_key)
    again = push(f"/api/amplitude/lists/{list_id}/add", add, acme_inbound_key).json()
    retry = push(f"/api/amplitude/lists/{list_id}/add", add, acme_inbound_key).json()
    assert again["duplicate"] is False and retry["duplicate"] is True and retry["batchId"] == again["batchId"]
    drain()
    assert members(list_id) == {"a", "b"}
    assert MembershipChange.objects.count() == 4  # a, b added; b removed; b added again


def test_the_same_ids_pushed_under_two_identity_kinds_are_two_requests(acme, list_id):
    from integrations.models import ApiKey

    _, by_user = ApiKey.issue(acme, scope="inbound", name="users")
    _, by_email = ApiKey.issue(acme, scope="inbound", name="emails", identity_kind="email")
    first = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["x@example.com"]}, by_user).json()
    second = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["x@example.com"]}, by_email).json()
    assert second["duplicate"] is False and second["batchId"] != first["batchId"]


# --- any sequence, with repeats, ends as applying it in order ----------------------------------------

PEOPLE = ["p1", "p2", "p3"]
people = st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True)
operation = st.one_of(
    st.tuples(st.just("add"), people),
    st.tuples(st.just("remove"), people),
    st.tuples(st.just("identify"), st.sampled_from(PEOPLE), st.booleans()),
)
# Each step is a new operation or an exact repeat (same body) of an earlier step.
steps = st.lists(st.one_of(operation, st.integers(min_value=0, max_value=30)), min_size=1, max_size=12)
example_numbers = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_any_sequence_with_repeats_ends_as_applying_it_in_order(acme, acme_inbound_key, steps):
    n = next(example_numbers)  # each example: its own list, trait cohort and people
    list_id = push("/api/amplitude/lists", {"name": f"[Amplitude] L: list{n}"}, acme_inbound_key).json()["listId"]
    sent: list[tuple] = []
    listed, traited = set(), set()
    changes = 0
    for step in steps:
        if isinstance(step, int):
            if not sent:
                continue
            step = sent[step % len(sent)]  # the identical body again: a retry or a re-entry
        sent.append(step)
        if step[0] == "identify":
            _, person, inside = step
            push("/api/amplitude/identify", identify(f"{n}-{person}", f"trait{n}", inside), acme_inbound_key)
            before = set(traited)
            (traited.add if inside else traited.discard)(person)
            changes += len(before ^ traited)
        else:
            path, chosen = step
            push(f"/api/amplitude/lists/{list_id}/{path}", {"userIds": [f"{n}-{p}" for p in chosen]}, acme_inbound_key)
            before = set(listed)
            listed = listed | set(chosen) if path == "add" else listed - set(chosen)
            changes += len(before ^ listed)
    drain()
    assert members(list_id) == {f"{n}-{p}" for p in listed}
    trait = Segment.objects.filter(external_id=f"trait{n}").first()
    assert (members(trait.pk) if trait else set()) == {f"{n}-{p}" for p in traited}
    # Nothing counted twice: one ledger row per real change, sizes equal membership.
    segments = [list_id, *([trait.pk] if trait else [])]
    assert MembershipChange.objects.filter(segment_id__in=segments).count() == changes
    assert [Segment.objects.get(pk=pk).size for pk in segments] == [len(members(pk)) for pk in segments]
