"""The campaign work: CleverTap launches (past behaviour), enrollment from sync runs and paced
targeted sends (live behaviour), lookups of lost answers, report refreshes, and the tick's dispatcher.

Never send twice (docs/campaigns.md). CleverTap's create and targeted-send calls are not idempotent,
so none is ever retried blind:
- each call gets a name carrying the campaign's marker, recorded (Launch / SendBatch, state
  "sending") and committed BEFORE the call;
- an answer lost to a timeout, a dropped connection or a 5xx makes the call "unknown — checking":
  Get Campaigns is asked for that name; found → accepted; absent on two lookups a while apart →
  not applied, and only then is it created (a launch) or re-queued (the batch's people) again;
- a 429 is CleverTap's "not applied": the same people wait for the next slot;
- a worker that died mid-call leaves a "sending" row, which the tick treats as unknown.
Enrollment rows are unique per (campaign, person, ledger change) and claimed with SKIP LOCKED, so a
replayed push, a redelivered task or a second worker never enrolls or sends anyone twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import (
    API_TARGET_MODE,
    Campaign,
    EnrollmentStatus,
    Kind,
    Launch,
    PartnerState,
    Repeat,
    SendBatch,
    Status,
    When,
)
from campaigns.status import set_status
from integrations.connectors.base import ConnectorError, Policy, SegmentInfo
from integrations.connectors.clevertap import CleverTapCampaigns, membership_key
from integrations.delivery.calls import CallLog, log_calls
from integrations.delivery.models import RunStatus, SyncJob, SyncRun
from integrations.delivery.planning import destination_connector
from integrations.redis_client import redis_client

logger = logging.getLogger(__name__)

# ---- CleverTap access ------------------------------------------------------------------------------


class Api:
    """CleverTapCampaigns for a campaign's destination, with the calls logged to its call log."""

    def __init__(self, campaign: Campaign) -> None:
        self.destination_id = campaign.destination_id
        self.calls = CallLog()
        connector = destination_connector(
            campaign.destination, segment=SegmentInfo.of(campaign.segment), on_call=self.calls
        )
        self.client = CleverTapCampaigns(connector)
        self.account = str(connector.auth_fields.get("account_id") or f"destination-{campaign.destination_id}")
        self.membership_property = membership_key(campaign.destination.config, SegmentInfo.of(campaign.segment))

    def flush(self) -> None:
        log_calls(self.destination_id, None, self.calls.drain())

    def __getattr__(self, name):
        return getattr(self.client, name)


def _raw(exc: ConnectorError) -> str:
    return getattr(exc, "raw", "") or ""


def _lost(exc: ConnectorError) -> bool:
    """True when the call may have been applied: no answer, or a 5xx (CleverTap may have acted)."""
    return exc.policy == Policy.TRANSIENT or (exc.status or 0) >= 500


def content_payload(campaign: Campaign) -> dict:
    content = dict(campaign.content or {})
    return {key: value for key, value in content.items() if value not in (None, "")}


def create_payload(campaign: Campaign, api: Api, name: str) -> dict:
    return {
        "name": name,
        "target_mode": API_TARGET_MODE[campaign.channel],
        "where": CleverTapCampaigns.audience(api.membership_property),
        "respect_frequency_caps": True,
        "content": content_payload(campaign),
        "when": "now",  # the console keeps the schedule (next_run_at): each occurrence is created when due
    }


# ---- pacing ----------------------------------------------------------------------------------------

_PACE = """
local now = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[2])), 'PX', 60000)
return tostring(slot)
"""


def next_slot(account: str, per_second: float, now: float) -> float:
    """Reserve the account's next send slot (Unix time): slots are 1/rate apart across every worker."""
    return float(redis_client().eval(_PACE, 1, f"campaigns:pace:{account}", repr(now), repr(1.0 / per_second)))


def pace(account: str, per_second: float) -> None:
    """Wait for this account's next send slot."""
    if per_second <= 0:
        return
    slot = next_slot(account, per_second, time.time())
    delay = slot - time.time()
    if delay > 0:
        time.sleep(delay)


# ---- lookups ---------------------------------------------------------------------------------------


def _days(around: dt.datetime) -> tuple[int, int]:
    low, high = around - dt.timedelta(days=1), timezone.now() + dt.timedelta(days=1)
    return int(low.strftime("%Y%m%d")), int(high.strftime("%Y%m%d"))


def look_up(api: Api, name: str, since: dt.datetime) -> dict | None:
    """CleverTap's campaign named `name` (Get Campaigns over the days around `since`), or None.
    Raises ConnectorError when CleverTap could not be asked (the fate stays unknown)."""
    for target in api.list(*_days(since)):
        if target.get("name") == name:
            return target
    return None


# ---- past behaviour: launches ----------------------------------------------------------------------


def occurrence_due(campaign: Campaign, now: dt.datetime) -> dt.datetime | None:
    """The latest scheduled occurrence at or before `now` (None: the first is still ahead)."""
    first = campaign.send_at if campaign.when == When.AT and campaign.send_at else campaign.launched_at or now
    if first > now:
        return None
    if campaign.repeat == Repeat.ONCE:
        return first
    step = 1 if campaign.repeat == Repeat.DAILY else 7
    tz = campaign.workspace.tz
    local = first.astimezone(tz)
    # Same wall-clock time in the workspace's zone each day/week (DST-correct), the latest ≤ now.
    days = (now.astimezone(tz).date() - local.date()).days
    k = max(0, days // step)
    while k >= 0:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=k * step), local.timetz().replace(tzinfo=None))
        candidate = candidate.replace(tzinfo=tz)
        if candidate <= now:
            return candidate.astimezone(dt.UTC)
        k -= 1
    return first


def next_occurrence(campaign: Campaign, after: dt.datetime) -> dt.datetime | None:
    if campaign.repeat == Repeat.ONCE:
        return None
    step = 1 if campaign.repeat == Repeat.DAILY else 7
    tz = campaign.workspace.tz
    local = after.astimezone(tz)
    candidate = dt.datetime.combine(local.date() + dt.timedelta(days=step), local.timetz().replace(tzinfo=None))
    return candidate.replace(tzinfo=tz).astimezone(dt.UTC)


def launch_occurrence(campaign: Campaign, occurrence: dt.datetime) -> Launch:
    """Create CleverTap's campaign for one occurrence, at most once (see the module's docstring)."""
    utc = occurrence.astimezone(dt.UTC)
    key = utc.strftime("%Y-%m-%dT%H:%M")
    # The name CleverTap shows carries the marker and the occurrence in ISO 8601's basic form
    # (20261204T0600Z): unambiguous in CleverTap's dashboard, whatever zone its reader is in.
    label = utc.strftime("%Y%m%dT%H%MZ")
    launch, _ = Launch.objects.get_or_create(
        campaign=campaign, occurrence=key, defaults={"name": f"{campaign.name} [{campaign.marker} {label}]"}
    )
    if launch.state in (PartnerState.ACCEPTED, PartnerState.FAILED, PartnerState.ABANDONED):
        return launch
    api = Api(campaign)
    try:
        # An earlier call's answer was lost (or its worker died): ask before anything else.
        if launch.state in (PartnerState.SENDING, PartnerState.UNKNOWN) and not _settle_unknown_launch(launch, api):
            return launch
        # Claimed by one worker only: a second one finds the state moved and leaves it.
        claimed = Launch.objects.filter(pk=launch.pk, state=PartnerState.PENDING).update(
            state=PartnerState.SENDING, attempts=launch.attempts + 1
        )
        if not claimed:
            launch.refresh_from_db()
            return launch
        launch.refresh_from_db()
        try:
            body, raw = api.create(create_payload(campaign, api, launch.name))
        except ConnectorError as exc:
            _launch_failed(campaign, launch, exc, api)
            return launch
        _launch_accepted(launch, str(body.get("id") or ""), f"Created at CleverTap (id {body.get('id')}).", raw)
        return launch
    finally:
        api.flush()


def _launch_accepted(launch: Launch, partner_id: str, answer: str, raw: str = "") -> None:
    Launch.objects.filter(pk=launch.pk).update(
        state=PartnerState.ACCEPTED,
        partner_id=partner_id,
        answer=answer[:500],
        answer_raw=raw,
        answered_at=timezone.now(),
    )
    launch.refresh_from_db()


def _launch_failed(campaign: Campaign, launch: Launch, exc: ConnectorError, api: Api) -> None:
    if exc.policy == Policy.RATE_LIMITED:
        # 429: CleverTap applied nothing. The tick tries again.
        Launch.objects.filter(pk=launch.pk).update(state=PartnerState.PENDING, answer=str(exc)[:500])
        Campaign.objects.filter(pk=campaign.pk).update(next_run_at=timezone.now() + dt.timedelta(seconds=30))
        launch.refresh_from_db()
        return
    if _lost(exc):
        Launch.objects.filter(pk=launch.pk).update(
            state=PartnerState.UNKNOWN,
            answer=f"No answer ({exc}); checking with CleverTap."[:500],
            answer_raw=_raw(exc),
        )
        launch.refresh_from_db()
        _settle_unknown_launch(launch, api, first_look=True)
        if launch.state == PartnerState.UNKNOWN:
            # Looked up again by the tick, a while later (CleverTap may still be creating it).
            Campaign.objects.filter(pk=campaign.pk).update(
                next_run_at=timezone.now() + dt.timedelta(seconds=settings.CAMPAIGN_LOOKUP_DELAY_SECONDS)
            )
        return
    Launch.objects.filter(pk=launch.pk).update(
        state=PartnerState.FAILED, answer=str(exc)[:500], answer_raw=_raw(exc), answered_at=timezone.now()
    )
    launch.refresh_from_db()
    set_status(campaign, Status.FAILED, reason=f"CleverTap refused the campaign: {exc}")


def _settle_unknown_launch(launch: Launch, api: Api, *, first_look: bool = False) -> bool:
    """Look a launch of unknown fate up. True when it is known absent (and may be created now)."""
    try:
        found = look_up(api, launch.name, launch.created_at)
    except ConnectorError as exc:
        Launch.objects.filter(pk=launch.pk).update(state=PartnerState.UNKNOWN, answer=f"Checking: {exc}"[:500])
        launch.refresh_from_db()
        return False
    if found is not None:
        _launch_accepted(launch, str(found.get("id") or ""), f"Found at CleverTap by its name (id {found.get('id')}).")
        return False
    checks = int((launch.report or {}).get("absent_checks", 0)) + 1
    if first_look or checks < 2:
        # Absent once: CleverTap may still be applying it. Looked up again later before deciding.
        Launch.objects.filter(pk=launch.pk).update(
            state=PartnerState.UNKNOWN, report={**(launch.report or {}), "absent_checks": checks}
        )
        launch.refresh_from_db()
        return False
    Launch.objects.filter(pk=launch.pk).update(
        state=PartnerState.PENDING, answer="Not found at CleverTap on two lookups: created again."
    )
    launch.refresh_from_db()
    return True


def run_past(campaign: Campaign, now: dt.datetime) -> None:
    occurrence = occurrence_due(campaign, now)
    if occurrence is None:
        Campaign.objects.filter(pk=campaign.pk).update(next_run_at=campaign.send_at)
        return
    if campaign.status == Status.SCHEDULED:
        set_status(campaign, Status.RUNNING, reason="First occurrence due.", expect={Status.SCHEDULED})
    launch = launch_occurrence(campaign, occurrence)
    campaign.refresh_from_db()
    if campaign.status != Status.RUNNING:
        return
    if launch.state == PartnerState.ACCEPTED:
        following = next_occurrence(campaign, occurrence)
        if following is None:
            set_status(campaign, Status.FINISHED, reason="CleverTap created the campaign.", expect={Status.RUNNING})
        else:
            Campaign.objects.filter(pk=campaign.pk).update(next_run_at=following, last_activity_at=timezone.now())


# ---- live behaviour: enrollment ----------------------------------------------------------------------

# The person's latest change of the segment up to the run's snapshot must be an Added one after the
# launch: so only the segment's changes after the launch are read, one range of the (segment, id)
# ledger index, and joined to the run's delivered rows by hash (a per-row lookup was 600x slower).
_ENROLL_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (m.profile_id) m.profile_id, m.id, m.occurred_at, m.action
    FROM audiences_membershipchange m
    WHERE m.segment_id = %(segment)s AND m.id > %(start_after)s AND m.id <= %(snapshot)s
    ORDER BY m.profile_id, m.id DESC
)
INSERT INTO campaigns_enrollment
    (workspace_id, campaign_id, profile_id, change_id, change_at, to_kind, to_value, status, answer, answer_raw,
     created_at)
SELECT %(workspace)s, %(campaign)s, d.profile_id, c.id, c.occurred_at,
       CASE WHEN coalesce(d.user_id, '') <> '' THEN 'identity' ELSE 'objectId' END,
       coalesce(nullif(d.user_id, ''), d.device_id), 'pending', '', '', now()
FROM delivery_deliveryrow d
JOIN latest c ON c.profile_id = d.profile_id
WHERE d.run_id = %(run)s AND d.action = 'add' AND d.status = 'delivered'
  AND coalesce(nullif(d.user_id, ''), d.device_id) IS NOT NULL
  AND c.action = 'added'
  AND (%(reentry)s OR NOT EXISTS (
        SELECT 1 FROM campaigns_enrollment e WHERE e.campaign_id = %(campaign)s AND e.profile_id = d.profile_id))
ON CONFLICT (campaign_id, profile_id, change_id) DO NOTHING
"""


def enroll_from_runs(campaign_id: int) -> int:
    """Enroll the people whose Added change finished sync runs delivered to CleverTap (accepted
    rows only: a rejected or failed row enrolls nobody until a later run delivers it). Returns the
    number of new enrollments. The campaign row is locked meanwhile, so two workers enroll in turn."""
    added = 0
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.kind != Kind.LIVE or campaign.status != Status.RUNNING:
            return 0
        job = SyncJob.objects.filter(segment_id=campaign.segment_id, destination_id=campaign.destination_id).first()
        if job is None:
            return 0
        runs = SyncRun.objects.filter(job=job, pk__gt=campaign.enrolled_through_run_id).order_by("pk")
        through = campaign.enrolled_through_run_id
        with connection.cursor() as cursor:
            # A push has just written the rows this reads, before autovacuum's statistics know of them:
            # the planner then guesses one row each and picks a nested loop (20,000 people took 2
            # minutes). The hash join is right at every size here, so nested loops are ruled out.
            cursor.execute("SET LOCAL enable_nestloop = off")
            for run in runs.only("pk", "status", "snapshot_cursor", "planned"):
                if run.status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING):
                    break  # its rows are not final yet; later runs wait behind it (one active run per job)
                if run.planned and run.snapshot_cursor is not None:
                    cursor.execute(
                        _ENROLL_SQL,
                        {
                            "workspace": campaign.workspace_id,
                            "campaign": campaign.pk,
                            "segment": campaign.segment_id,
                            "snapshot": run.snapshot_cursor,
                            "run": run.pk,
                            "start_after": campaign.start_after_change_id or 0,
                            "reentry": campaign.reentry == "after_removal",
                        },
                    )
                    added += cursor.rowcount
                through = run.pk
        if through != campaign.enrolled_through_run_id:
            fields = {"enrolled_through_run_id": through}
            if added:
                fields["last_activity_at"] = timezone.now()
            Campaign.objects.filter(pk=campaign.pk).update(**fields)
    return added


# ---- live behaviour: targeted sends ------------------------------------------------------------------


def send_pending(campaign_id: int, *, max_batches: int | None = None) -> int:
    """Send the campaign's pending enrollments in batches, paced to the account's rate. Returns
    the number of batches sent. Safe to run in several workers at once (disjoint claims)."""
    batches = 0
    campaign = Campaign.objects.select_related("destination__authorization", "segment", "workspace").get(pk=campaign_id)
    api = Api(campaign)
    try:
        while max_batches is None or batches < max_batches:
            claimed = _claim_batch(campaign)
            if claimed is None:
                break
            batch, people = claimed
            pace(api.account, settings.CAMPAIGN_SENDS_PER_SECOND)
            if not _send_batch(campaign, api, batch, people):
                break
            batches += 1
    finally:
        api.flush()
    return batches


def _claim_batch(campaign: Campaign) -> tuple[SendBatch, list[tuple[int, str, str]]] | None:
    size = min(settings.CAMPAIGN_SEND_BATCH_SIZE, 1000)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT status FROM campaigns_campaign WHERE id = %s FOR SHARE", [campaign.pk])
        row = cursor.fetchone()
        if row is None or row[0] != Status.RUNNING:
            return None
        cursor.execute(
            "SELECT id, to_kind, to_value FROM campaigns_enrollment WHERE campaign_id = %s AND status = 'pending' "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            [campaign.pk, size],
        )
        people = cursor.fetchall()
        if not people:
            return None
        batch = SendBatch.objects.create(campaign=campaign, name="", state=PartnerState.SENDING, size=len(people))
        batch.name = f"{campaign.name} [{campaign.marker} b{batch.pk}]"
        SendBatch.objects.filter(pk=batch.pk).update(name=batch.name)
        cursor.execute(
            "UPDATE campaigns_enrollment SET status = 'sending', batch_id = %s WHERE id = ANY(%s)",
            [batch.pk, [p[0] for p in people]],
        )
    return batch, people


def _send_batch(campaign: Campaign, api: Api, batch: SendBatch, people: list[tuple[int, str, str]]) -> bool:
    """One targeted send; False when the loop should stop (campaign no longer running, auth refused)."""
    to: dict[str, list[str]] = {}
    for _, kind, value in people:
        to.setdefault(kind, []).append(value)
    payload = {
        "name": batch.name,
        "tag_group": campaign.marker,
        "to": to,
        "respect_frequency_caps": True,
        "content": content_payload(campaign),
    }
    # The call is made while holding a share lock on the campaign row: a stop (which updates the
    # row) waits until the calls in flight are answered, and a call never starts after a stop.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT status FROM campaigns_campaign WHERE id = %s FOR SHARE", [campaign.pk])
        if cursor.fetchone()[0] != Status.RUNNING:
            _abandon_batch(batch)
            return False
        try:
            body, raw = api.targeted_send(API_TARGET_MODE[campaign.channel], payload)
            error = None
        except ConnectorError as exc:
            body, raw, error = {}, _raw(exc), exc
    now = timezone.now()
    if error is None:
        failed = {
            str(item.get("id")): str(item.get("error") or "not processed")
            for item in body.get("unprocessed") or []
            if isinstance(item, dict)
        }
        with transaction.atomic(), connection.cursor() as cursor:
            SendBatch.objects.filter(pk=batch.pk).update(
                state=PartnerState.ACCEPTED,
                partner_id=str(body.get("id") or ""),
                answer=f"Accepted: {body.get('processed', len(people) - len(failed))} sent, {len(failed)} not processed."[
                    :500
                ],
                answer_raw=raw,
                answered_at=now,
                attempts=batch.attempts + 1,
            )
            cursor.execute(
                "UPDATE campaigns_enrollment SET status = 'sent', sent_at = %s, answer = %s "
                "WHERE batch_id = %s AND status = 'sending' AND NOT (to_value = ANY(%s::text[]))",
                [now, f"Sent (CleverTap campaign {body.get('id') or '?'})", batch.pk, list(failed)],
            )
            for value, reason in failed.items():
                cursor.execute(
                    "UPDATE campaigns_enrollment SET status = 'failed', answer = %s, answer_raw = %s "
                    "WHERE batch_id = %s AND status = 'sending' AND to_value = %s",
                    [f"CleverTap did not send: {reason}"[:500], raw, batch.pk, value],
                )
            Campaign.objects.filter(pk=campaign.pk).update(last_activity_at=now)
        return True
    if error.policy == Policy.RATE_LIMITED:
        # 429: nothing applied. The same people go back in line, and this worker waits it out.
        _requeue_batch(batch, f"Rate limited by CleverTap: {error}")
        time.sleep(min(error.retry_after or 1.0, 10.0))
        return True
    if _lost(error):
        SendBatch.objects.filter(pk=batch.pk).update(
            state=PartnerState.UNKNOWN,
            answer=f"No answer ({error}); checking with CleverTap."[:500],
            answer_raw=raw,
            attempts=batch.attempts + 1,
            next_check_at=now + dt.timedelta(seconds=settings.CAMPAIGN_LOOKUP_DELAY_SECONDS),
        )
        _set_batch_people(batch, EnrollmentStatus.UNKNOWN, "Unknown — checking with CleverTap.")
        return True
    SendBatch.objects.filter(pk=batch.pk).update(
        state=PartnerState.FAILED, answer=str(error)[:500], answer_raw=raw, answered_at=now, attempts=batch.attempts + 1
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_enrollment SET status = 'failed', answer = %s, answer_raw = %s "
            "WHERE batch_id = %s AND status = 'sending'",
            [f"CleverTap refused the send: {error}"[:500], raw, batch.pk],
        )
    if error.policy in (Policy.AUTH, Policy.PERMANENT):
        set_status(campaign, Status.FAILED, reason=f"CleverTap refused the sends: {error}")
        return False
    return True


def _set_batch_people(batch: SendBatch, status: str, answer: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_enrollment SET status = %s, answer = %s WHERE batch_id = %s AND status IN ('sending', 'unknown')",
            [status, answer, batch.pk],
        )


def _requeue_batch(batch: SendBatch, why: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        SendBatch.objects.filter(pk=batch.pk).update(
            state=PartnerState.ABANDONED, answer=why[:500], answered_at=timezone.now()
        )
        cursor.execute(
            "UPDATE campaigns_enrollment SET status = 'pending', batch_id = NULL, answer = '' "
            "WHERE batch_id = %s AND status IN ('sending', 'unknown')",
            [batch.pk],
        )


def _abandon_batch(batch: SendBatch) -> None:
    SendBatch.objects.filter(pk=batch.pk).update(
        state=PartnerState.ABANDONED, answer="Not sent: the campaign was stopped.", answered_at=timezone.now()
    )
    _set_batch_people(batch, EnrollmentStatus.SKIPPED, "Not sent: the campaign was stopped.")


def check_unknown_batches(now: dt.datetime | None = None) -> int:
    """Settle targeted sends of unknown fate (and those whose worker died mid-call) by lookup."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.DELIVERY_READ_TIMEOUT + settings.DELIVERY_CONNECT_TIMEOUT + 60)
    settled = 0
    with transaction.atomic():
        due = list(
            SendBatch.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                Q(state=PartnerState.UNKNOWN, next_check_at__lte=now)
                | Q(state=PartnerState.SENDING, created_at__lt=stale)
            )
            .select_related("campaign__destination__authorization", "campaign__segment", "campaign__workspace")[:50]
        )
        for batch in due:
            settled += _settle_batch(batch, now)
    return settled


def _settle_batch(batch: SendBatch, now: dt.datetime) -> int:
    api = Api(batch.campaign)
    try:
        found = look_up(api, batch.name, batch.created_at)
    except ConnectorError as exc:
        SendBatch.objects.filter(pk=batch.pk).update(
            state=PartnerState.UNKNOWN, answer=f"Checking: {exc}"[:500], next_check_at=now + dt.timedelta(minutes=1)
        )
        return 0
    finally:
        api.flush()
    if found is not None:
        SendBatch.objects.filter(pk=batch.pk).update(
            state=PartnerState.ACCEPTED,
            partner_id=str(found.get("id") or ""),
            answer=f"Found at CleverTap by its name (id {found.get('id')}): sent.",
            answered_at=now,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE campaigns_enrollment SET status = 'sent', sent_at = %s, answer = %s "
                "WHERE batch_id = %s AND status IN ('sending', 'unknown')",
                [now, f"Sent (confirmed by lookup, CleverTap campaign {found.get('id')})", batch.pk],
            )
        return 1
    if batch.state == PartnerState.SENDING or not batch.answer.startswith("Absent once"):
        # Absent on the first look: CleverTap may still be applying it; one more look later.
        SendBatch.objects.filter(pk=batch.pk).update(
            state=PartnerState.UNKNOWN,
            answer="Absent once at CleverTap; looking again before deciding.",
            next_check_at=now + dt.timedelta(seconds=settings.CAMPAIGN_LOOKUP_DELAY_SECONDS),
        )
        _set_batch_people(batch, EnrollmentStatus.UNKNOWN, "Unknown — checking with CleverTap.")
        return 0
    if batch.campaign.status == Status.RUNNING:
        # Its people are pending again; the same tick queues the campaign (claim_due looks after this).
        _requeue_batch(batch, "Not found at CleverTap on two lookups: its people are sent again in a new batch.")
    else:
        _abandon_batch(batch)
    return 1


# ---- stop, reports, the tick -------------------------------------------------------------------------


def stop_at_partner(campaign: Campaign) -> list[str]:
    """Stop Campaign for each CleverTap campaign this one created (past behaviour). Returns the
    problems (an empty list when CleverTap took every stop)."""
    problems = []
    launches = list(campaign.launches.filter(state=PartnerState.ACCEPTED).exclude(partner_id=""))
    if not launches:
        return problems
    api = Api(campaign)
    try:
        for launch in launches:
            if (launch.report or {}).get("stopped"):
                continue
            try:
                api.stop(launch.partner_id)
                Launch.objects.filter(pk=launch.pk).update(report={**(launch.report or {}), "stopped": True})
            except ConnectorError as exc:
                problems.append(f"CleverTap campaign {launch.partner_id}: {exc}")
    finally:
        api.flush()
    return problems


def skip_pending(campaign: Campaign) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_enrollment SET status = 'skipped', answer = 'Not sent: the campaign was stopped.' "
            "WHERE campaign_id = %s AND status = 'pending'",
            [campaign.pk],
        )
        return cursor.rowcount


REPORT_FIGURES = ("sent", "viewed", "clicked", "errors")


def refresh_report(campaign: Campaign) -> dict:
    """Get Campaign Report for each CleverTap campaign this one created; the sums are kept on the campaign."""
    launches = list(campaign.launches.filter(state=PartnerState.ACCEPTED).exclude(partner_id="").order_by("-id")[:30])
    totals = dict.fromkeys(REPORT_FIGURES, 0)
    api = Api(campaign)
    try:
        for launch in launches:
            try:
                body = api.report(launch.partner_id)
            except ConnectorError as exc:
                logger.info("campaign %s report of %s: %s", campaign.pk, launch.partner_id, exc)
                body = {"message_stats": (launch.report or {}).get("figures", {})}
            stats = body.get("message_stats") if isinstance(body.get("message_stats"), dict) else {}
            figures = {k: int(stats.get(k) or 0) for k in REPORT_FIGURES if isinstance(stats.get(k, 0), int | float)}
            Launch.objects.filter(pk=launch.pk).update(report={**(launch.report or {}), "figures": figures})
            for key, value in figures.items():
                totals[key] += value
    finally:
        api.flush()
    report = {**totals, "launches": len(launches)}
    Campaign.objects.filter(pk=campaign.pk).update(report=report, report_refreshed_at=timezone.now())
    return report


def run_campaign(campaign_id: int) -> None:
    """What a due campaign does now (a task; idempotent)."""
    campaign = (
        Campaign.objects.select_related("destination__authorization", "segment", "workspace")
        .filter(pk=campaign_id)
        .first()
    )
    if campaign is None or campaign.status not in (Status.SCHEDULED, Status.RUNNING):
        return
    if campaign.kind == Kind.PAST:
        run_past(campaign, timezone.now())
        return
    if enroll_from_runs(campaign.pk) or campaign.enrollments.filter(status=EnrollmentStatus.PENDING).exists():
        send_pending(campaign.pk)


def live_campaigns_fed_by(run: SyncRun) -> list[int]:
    """The live campaigns a finished sync run feeds: they enroll and send what it delivered."""
    return list(
        Campaign.objects.filter(
            kind=Kind.LIVE,
            status=Status.RUNNING,
            segment_id=run.job.segment_id,
            destination_id=run.job.destination_id,
        ).values_list("pk", flat=True)
    )


def claim_due(now: dt.datetime) -> list[int]:
    """The tick's share: settles lost answers, refreshes reports, and returns the campaigns with
    work to do now (due launches and their re-checks, live campaigns with people waiting), claimed
    so a second scheduler does not return them too. campaigns.scheduling queues them."""
    try:
        # First: a send found lost puts its people back to pending, and the scan below sees them.
        check_unknown_batches(now)
    except Exception:  # one partner being down must not stop the rest of the tick
        logger.exception("checking unknown campaign sends failed")
    queued: list[int] = []
    with transaction.atomic():
        due = list(
            Campaign.objects.select_for_update(skip_locked=True)
            .filter(next_run_at__lte=now, status__in=(Status.SCHEDULED, Status.RUNNING))
            .values_list("pk", flat=True)[:200]
        )
        if due:
            Campaign.objects.filter(pk__in=due).update(next_run_at=None)
        queued.extend(due)
    # Live campaigns: runs not yet enrolled from, or people still waiting (a worker died).
    live = Campaign.objects.filter(kind=Kind.LIVE, status=Status.RUNNING).exclude(pk__in=queued)
    for campaign in live.only("pk", "segment_id", "destination_id", "enrolled_through_run_id"):
        newer_run = SyncRun.objects.filter(
            job__segment_id=campaign.segment_id,
            job__destination_id=campaign.destination_id,
            pk__gt=campaign.enrolled_through_run_id,
            finished_at__isnull=False,
        ).exists()
        if newer_run or campaign.enrollments.filter(status=EnrollmentStatus.PENDING).exists():
            queued.append(campaign.pk)
    stale = now - dt.timedelta(seconds=settings.CAMPAIGN_REPORT_REFRESH_SECONDS)
    for campaign in (
        Campaign.objects.filter(kind=Kind.PAST, launches__state=PartnerState.ACCEPTED)
        .filter(Q(report_refreshed_at__isnull=True) | Q(report_refreshed_at__lt=stale))
        .filter(Q(status=Status.RUNNING) | Q(status_changed_at__gte=now - dt.timedelta(days=7)))
        .distinct()
        .select_related("destination__authorization", "segment")[:20]
    ):
        try:
            refresh_report(campaign)
        except Exception:
            logger.exception("campaign %s report refresh failed", campaign.pk)
    return queued
