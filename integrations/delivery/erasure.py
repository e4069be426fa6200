"""The partners' side of an erasure (audiences.erasure): where was the person sent, and asking the
partners that have a deletion API to delete them.

`targets` runs inside the erasure's transaction, before the rows that say where the person went are
deleted; `request_deletions` runs after it commits. By then no sync can send the person again (the
senders re-read their rows under the people lock, audiences.people_lock.SendGate), so a batch still in
flight cannot recreate at the partner the profile it has just deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from integrations.connectors.base import SegmentInfo
from integrations.connectors.registry import CONNECTORS, connector_class, partner_declarations
from integrations.delivery.calls import CallLog, Verdict, call_with_retries, log_calls, prune_call_log
from integrations.delivery.models import Destination
from integrations.delivery.planning import destination_connector
from integrations.delivery.semaphore import connector_slots

# Where a person was sent, per destination: delivery rows (what each sync staged and sent, with the
# partner ids it used), and what partner apps declare (their erasure.py SENT_SQL: link queues, event
# streams, exports).
_SENT_SQL = """
SELECT j.destination_id, r.user_id, r.device_id FROM delivery_deliveryrow r
JOIN delivery_syncjob j ON j.id = r.job_id
WHERE r.profile_id = ANY(%(ids)s) AND r.status <> 'invalid'
"""


def _sent_sql() -> str:
    return "\nUNION ALL\n".join([_SENT_SQL, *partner_declarations("erasure", "SENT_SQL")])


@dataclass
class Target:
    destination_id: int
    name: str
    kind: str
    sent: bool = False
    identities: list[str] = field(default_factory=list)  # the partner's user ids for the person
    device_ids: list[str] = field(default_factory=list)  # device ids sent with no user id

    @property
    def partner(self) -> str:
        return CONNECTORS[self.kind].label.split(" (")[0]

    def outcome(self, status: str, message: str = "") -> dict:
        """What the asker and the audit row see: no identifier of the person, ever."""
        return {
            "destination_id": self.destination_id,
            "destination": self.name,
            "partner": self.partner,
            "outcome": status,  # pending | deleted | failed | not_supported | not_sent
            "message": message,
        }


def targets(workspace_id: int, profile_ids: list[int]) -> list[Target]:
    """Every destination of the workspace, with whether and as whom the person was sent there."""
    found = {
        d.pk: Target(d.pk, d.name, d.kind)
        for d in Destination.objects.filter(workspace_id=workspace_id).order_by("name", "pk")
    }
    if not profile_ids:
        return list(found.values())
    with connection.cursor() as cursor:
        cursor.execute(_sent_sql(), {"ids": profile_ids, "workspace": workspace_id})
        for destination_id, user_id, device_id in cursor.fetchall():
            target = found.get(destination_id)
            if target is None:
                continue
            target.sent = True
            if user_id and user_id not in target.identities:
                target.identities.append(user_id)
            elif device_id and not user_id and device_id not in target.device_ids:
                target.device_ids.append(device_id)
    return list(found.values())


def request_deletions(found: list[Target], redactor) -> list[dict]:
    """Each destination's outcome; partners with a deletion API are asked, the others named."""
    outcomes = []
    for target in found:
        cls = connector_class(target.kind)
        if not target.sent:
            outcomes.append(target.outcome("not_sent", "Never sent there: nothing to delete."))
        elif not cls.deletion_api:
            note = cls.deletion_note or f"Not supported by {target.partner}: remove this person there by hand."
            outcomes.append(target.outcome("not_supported", note))
        elif not target.identities and not target.device_ids:
            outcomes.append(target.outcome("not_sent", "Sent without an id the partner can delete by."))
        else:
            outcomes.append(_ask(target, redactor))
    return outcomes


def _ask(target: Target, redactor) -> dict:
    destination = Destination.objects.select_related("authorization").filter(pk=target.destination_id).first()
    if destination is None:
        return target.outcome("failed", "The destination was deleted meanwhile: remove this person there by hand.")
    calls = CallLog()
    connector = destination_connector(destination, segment=SegmentInfo(0, "erasure", "0"), on_call=calls)
    try:
        # A 429 or a 5xx is retried like a sync's batch; a long wait is not waited here (the erasure
        # is committed, the asker is waiting): that is a failure to report, like any other.
        result = call_with_retries(
            lambda: connector.delete_people(target.identities, target.device_ids),
            connector_slots(connector, destination.pk),
            rule=connector.retry_rule,
        )
        if result.verdict == Verdict.SENT:
            outcome = target.outcome("deleted", result.value)
        else:
            reason = redactor.text(result.message)
            message = f"{target.partner} did not confirm the deletion ({reason}): remove this person there by hand."
            outcome = target.outcome("failed", message)
    except Exception as error:  # noqa: BLE001 - the erasure is committed: the asker must hear of this
        reason = redactor.text(f"{type(error).__name__}: {error}")
        outcome = target.outcome(
            "failed", f"Could not ask {target.partner} ({reason}): remove this person there by hand."
        )
    # The call log keeps the partner's answers: whatever in them names the person goes first.
    recorded = calls.drain()
    for call in recorded:
        call.url, call.response_excerpt, call.error = (
            redactor.text(call.url),
            redactor.text(call.response_excerpt),
            redactor.text(call.error),
        )
    log_calls(destination.pk, None, recorded)
    prune_call_log(destination.pk)
    return outcome
