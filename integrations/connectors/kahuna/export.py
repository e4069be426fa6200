"""Export to Kahuna: a segment sent to an enabled Adaptive campaign, and the campaign list behind it.

Kahuna's Adaptive Campaign API (POST /api/campaign/populate?env=p|s) is asynchronous: each call
hands back a job id at once, which is what the export records. At most 10 populate calls may run at
a time (across every worker: a Redis semaphore), each body under 10 MB (populate_batch_size users).
Members are read in keyset pages of profile ids, so a big segment never sits in memory.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from audiences.identity import stored_kind
from audiences.models import Segment
from integrations.connectors.base import ConnectorError, OutboundRequest, Policy, SegmentInfo
from integrations.connectors.kahuna.connector import KahunaConnector
from integrations.connectors.kahuna.models import Environment, ExportStatus, KahunaCampaign, KahunaExport
from integrations.delivery.calls import CallLog, Verdict, call_with_retries, log_calls, prune_call_log
from integrations.delivery.health import set_health
from integrations.delivery.models import Destination, Health
from integrations.delivery.planning import destination_connector
from integrations.delivery.semaphore import DestinationSemaphore

POPULATE_CONCURRENCY = 10  # Kahuna: "<= 10 simultaneous requests"


def connector_for(
    destination: Destination, segment: Segment | None = None, calls: CallLog | None = None
) -> KahunaConnector:
    """The Kahuna destination's connector (its class comes from the destination's kind)."""
    return destination_connector(destination, segment=SegmentInfo.of(segment) if segment else None, on_call=calls)


# ---- the campaign list ---------------------------------------------------------------------------


def refresh_campaigns(destination: Destination) -> int:
    """Upsert the campaigns Kahuna lists for both environments. Returns how many it listed.

    Kahuna's listing endpoint is UNCONFIRMED (config campaigns_path); campaigns entered by hand stay.
    """
    calls = CallLog()
    connector = connector_for(destination, calls=calls)
    listed = 0
    try:
        for env in Environment.values:
            url = f"{destination.config['base_url'].rstrip('/')}{destination.config['campaigns_path']}?env={env}"
            response = connector.http.send(
                OutboundRequest("GET", url, None, connector.auth_headers()), b"", f"list campaigns env={env}"
            )
            connector.raise_for_response(response)
            for item in (response.json() or {}).get("campaigns", []):
                KahunaCampaign.objects.update_or_create(
                    destination=destination,
                    environment=env,
                    campaign_id=str(item["id"]),
                    defaults={
                        "workspace_id": destination.workspace_id,
                        "name": item.get("name") or str(item["id"]),
                        "enabled": bool(item.get("enabled", True)),
                        "campaign_type": item.get("type", "adaptive"),
                        "refreshed_at": timezone.now(),
                    },
                )
                listed += 1
    finally:
        log_calls(destination.pk, None, calls.drain())
    return listed


# ---- exports -------------------------------------------------------------------------------------


_MEMBERS_PAGE = """
SELECT m.profile_id,
       (SELECT i.value FROM audiences_identity i WHERE i.profile_id = m.profile_id AND i.kind = %(user_kind)s
        ORDER BY i.id LIMIT 1),
       (SELECT i.value FROM audiences_identity i WHERE i.profile_id = m.profile_id AND i.kind = %(device_kind)s
        ORDER BY i.id LIMIT 1)
FROM audiences_segmentmember m
WHERE m.segment_id = %(segment)s AND m.profile_id > %(after)s
ORDER BY m.profile_id LIMIT %(limit)s
"""


@dataclass
class _Page:
    targets: list[dict]
    invalid: int


def _member_pages(export: KahunaExport, connector: KahunaConnector, size: int):
    after = 0
    params = {
        "segment": export.segment_id,
        "user_kind": stored_kind(connector.config.get("export_user_id_kind", "user_id")),
        "device_kind": stored_kind(connector.config.get("export_device_id_kind", "device_id")),
        "limit": size,
    }
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_MEMBERS_PAGE, {**params, "after": after})
            rows = cursor.fetchall()
        if not rows:
            return
        after = rows[-1][0]
        targets = [connector.target(user_id, device_id) for _, user_id, device_id in rows]
        yield _Page([t for t in targets if t], sum(1 for t in targets if not t))


def _populate(
    connector: KahunaConnector, export: KahunaExport, targets: list[dict], semaphore: DestinationSemaphore
) -> str:
    """One populate call; Kahuna's job id. Raises the ConnectorError that ended it otherwise."""
    config = connector.config
    body = {"campaign_config": {"campaign_id": export.campaign.campaign_id}, config["populate_users_key"]: targets}
    request = OutboundRequest("POST", connector.url(config["populate_path"]), body, connector.auth_headers())
    encoded = request.encode()

    def call() -> str:
        response = connector.http.send(request, encoded, f"populate {len(targets)} users, export {export.pk}")
        connector.raise_for_response(response)
        answer = response.json()
        if not answer.get("success", True):
            raise ConnectorError(
                Policy.REJECTED, connector.mask(f"Kahuna: {answer.get('error') or 'populate refused'}")
            )
        return str(answer.get("job_id") or answer.get("jobId") or "")

    result = call_with_retries(call, semaphore, rule=connector.export_retry_rule)
    if result.verdict != Verdict.SENT:
        raise result.error
    return result.value


def run_export(export_id: int) -> KahunaExport | None:
    """Claim a queued export and send it. Safe to call twice (the second finds it claimed)."""
    if not KahunaExport.objects.filter(pk=export_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=timezone.now()
    ):
        return None
    export = KahunaExport.objects.select_related("campaign__destination__authorization", "segment").get(pk=export_id)
    destination = export.campaign.destination
    calls = CallLog()
    connector = connector_for(destination, export.segment, calls)
    connector.config = {**connector.config, "environment": export.environment}
    semaphore = DestinationSemaphore(f"kahuna-populate:{destination.pk}", cap=POPULATE_CONCURRENCY)
    job_ids, sent, total, invalid, error = [], 0, 0, 0, ""
    with ThreadPoolExecutor(max_workers=POPULATE_CONCURRENCY, thread_name_prefix=f"kahuna{export_id}") as pool:
        futures = []
        for page in _member_pages(export, connector, int(connector.config.get("populate_batch_size", 50_000))):
            invalid += page.invalid
            total += len(page.targets) + page.invalid
            if page.targets:
                futures.append((len(page.targets), pool.submit(_populate, connector, export, page.targets, semaphore)))
        for size, future in futures:
            try:
                job_ids.append(future.result())
                sent += size
            except ConnectorError as exc:
                error = error or exc.message
                if exc.policy == Policy.AUTH:
                    set_health(destination, Health.DISABLED, exc.message)
    log_calls(destination.pk, None, calls.drain())
    prune_call_log(destination.pk)
    KahunaExport.objects.filter(pk=export_id).update(
        status=ExportStatus.FAILED if error else ExportStatus.SUCCEEDED,
        job_ids=job_ids,
        job_id=job_ids[0] if job_ids else "",
        users_sent=sent,
        users_total=total,
        invalid=invalid,
        error=error,
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export
