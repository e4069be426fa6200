"""Nothing accepted is stranded: the scheduler re-queues old pending batches; a poison batch is set aside."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.scheduler import DISPATCHERS
from integrations.inbound.apply import ApplyStalled, backlog
from integrations.inbound.models import BatchStatus, InboundBatch
from integrations.inbound.tasks import dispatch_pending
from tests.inbound.conftest import drain, push


def test_the_scheduler_requeues_batches_left_pending(acme, acme_inbound_key, list_id):
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["a", "b"]}, acme_inbound_key)  # on_commit never ran here
    assert backlog(acme.pk) == 1
    assert "integrations.inbound.tasks.dispatch_pending" in DISPATCHERS
    assert dispatch_pending(timezone.now()) == 0  # too fresh: its own task may still be on the way
    assert dispatch_pending(timezone.now() + timedelta(minutes=5)) == 1  # eager mode applies it right away
    assert InboundBatch.objects.get().status == BatchStatus.APPLIED and backlog(acme.pk) == 0


def test_a_batch_that_keeps_failing_is_set_aside_and_later_ones_proceed(acme, acme_inbound_key, list_id, settings):
    settings.INBOUND_MAX_APPLY_ATTEMPTS = 2
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["a"]}, acme_inbound_key)
    InboundBatch.objects.update(body=b"{not json")  # a stored body the parser cannot read
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["b"]}, acme_inbound_key)
    with pytest.raises(ApplyStalled):  # first attempt: the scope waits, order is kept
        drain()
    assert InboundBatch.objects.order_by("id").last().status == BatchStatus.ACCEPTED
    drain()  # second attempt: given up on, the next batch proceeds
    first, second = InboundBatch.objects.order_by("id")
    assert first.status == BatchStatus.FAILED and first.attempts == 2 and "JSONDecodeError" in first.last_error
    assert second.status == BatchStatus.APPLIED
