"""Cohort import: request → poll → download → COPY → audiences.cohort_load (profiles, identities,
properties, and the set difference into the segment's ledger).

Per cohort, everything that changes the console's data happens in ONE transaction (staging,
profiles, identities, properties, segment, ledger): a failed or killed run leaves the segment's
membership exactly as it was. The file is streamed to a temporary file by a download thread and,
while it grows, from there into COPY (row by row through csv.reader if COPY refuses a row), so a
2-million-row cohort never sits in memory and PostgreSQL parses it while it is still arriving
(the file and its readers: integrations.sources.cohort_files).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audiences.bulk import scratch_table
from audiences.cohort_load import ColumnMap, ImportedCohort, load_cohort
from audiences.ledger import Cause
from integrations.sources import quota
from integrations.sources.amplitude import AmplitudeClient, AmplitudeError
from integrations.sources.cohort_files import (
    CHUNK,
    CORRUPT,
    Cancelled,
    CohortFileError,
    GrowingDownload,
    data_rows,
    read_header,
)
from integrations.sources.models import AmplitudeCohort, CohortImportJob, ImportRun
from integrations.sources.runs import LiveProgress, bump_counts, transition

logger = logging.getLogger(__name__)

# File column → profile properties, as Lytics' Amplitude cohort import maps them (docs/partner-apis.md section 1).
FIELD_MAP: dict[str, tuple[str, ...]] = {
    "user_id": ("amplitude_user_id",),
    "carrier": ("amplitude_carrier",),
    "city": ("city",),
    "country": ("country",),
    "device": ("amplitude_device",),
    "device_type": ("amplitude_device_type",),
    "dma": ("amplitude_dma",),
    "language": ("language",),
    "library": ("amplitude_library",),
    "os": ("amplitude_os",),
    "platform": ("amplitude_platform",),
    "region": ("region", "state"),
    "start_version": ("amplitude_start_version",),
    "version": ("amplitude_version",),
}
CUSTOM_PREFIX = "amplitude_"  # other user properties land as amplitude_<name>


def column_map(header: list[str], amplitude_id_property: str = "") -> ColumnMap:
    """Which file positions feed which profile properties: tolerant of order, repeats and extras."""
    names = [name.strip().lower() for name in header]
    if "amplitude_id" not in names:
        shown = ", ".join(header[:20]) or "(empty header)"
        raise CohortFileError(f"The cohort file has no amplitude_id column (columns: {shown}).")
    seen: set[str] = set()
    properties = []
    for position, (raw, name) in enumerate(zip(header, names, strict=True)):
        if name in seen or not name:  # a repeated column (Amplitude repeats amplitude_id) or a blank one
            seen.add(name)
            continue
        seen.add(name)
        if name == "amplitude_id":
            continue
        properties.append((position, FIELD_MAP.get(name) or (CUSTOM_PREFIX + raw.strip(),)))
    user_id = names.index("user_id") if "user_id" in names else None
    return ColumnMap(names.index("amplitude_id"), user_id, tuple(properties), amplitude_id_property)


@dataclass
class CohortResult:
    rows_read: int = 0
    staged: int = 0
    profiles_created: int = 0
    profiles_updated: int = 0
    entered: int = 0
    exited: int = 0
    skipped_reasons: Counter = field(default_factory=Counter)
    skipped_samples: list = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped_reasons[reason] += 1
        if len(self.skipped_samples) < 100:
            self.skipped_samples.append([f"line {line}", reason])

    def as_counts(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "profiles_created": self.profiles_created,
            "profiles_updated": self.profiles_updated,
            "entered": self.entered,
            "exited": self.exited,
            "skipped": sum(self.skipped_reasons.values()),
            "skipped_reasons": dict(self.skipped_reasons),
            "skipped_samples": self.skipped_samples,
        }


# The table the file is copied into (the staging tables after it: audiences.cohort_load).
RAW = "cohort_raw"  # the file's columns as text, c0 … c<n-1>, plus the row's line number


def _create_raw(cursor, width: int) -> str:
    """The table the file is copied into, c0 … c<width-1> and the line number; returns its name.

    Where the role may create one, an UNLOGGED table of this backend's own (audiences.bulk.
    scratch_table): parallel workers can scan it, so staging (audiences.cohort_load) cleans
    identifiers and builds properties on every core.
    """
    columns = (
        f"(line bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 2), "
        f"{', '.join(f'c{i} text' for i in range(width))})"
    )
    return scratch_table(cursor, RAW, columns)


def _copy_fast(cursor, raw: str, body: BinaryIO, width: int) -> None:
    """The whole body straight into COPY (FORMAT csv): PostgreSQL parses it, no Python per row.

    Raises (and the caller falls back to _copy_checked) on any row PostgreSQL refuses: a row with
    the wrong number of fields, a blank line, invalid UTF-8.
    """
    columns = ", ".join(f"c{i}" for i in range(width))
    # FORCE_NULL: a quoted empty value ("", how Amplitude writes a missing property) arrives as NULL,
    # so staging needs no NULLIF per column.
    with cursor.copy(f"COPY {raw} ({columns}) FROM STDIN (FORMAT csv, FORCE_NULL ({columns}))") as copy:
        while chunk := body.read(CHUNK):
            copy.write(chunk)


def _copy_checked(cursor, raw: str, binary: BinaryIO, width: int, result: CohortResult) -> None:
    """Row by row through csv.reader: rows of the wrong width are skipped and reported by line."""
    columns = ", ".join(f"c{i}" for i in range(width))
    line = 1
    with cursor.copy(f"COPY {raw} (line, {columns}) FROM STDIN") as copy:
        for row in data_rows(binary):
            line += 1
            if len(row) != width:
                if not row:  # a blank line (e.g. a trailing newline) is not a row
                    continue
                result.rows_read += 1
                result.skip(line, f"{len(row)} fields where the header has {width}")
                continue
            result.rows_read += 1
            copy.write_row((line, *[value if value != "" else None for value in row]))  # like FORCE_NULL
            result.staged += 1


def load_cohort_file(run: ImportRun, job: CohortImportJob, cohort: dict, binary: BinaryIO) -> CohortResult:
    """Apply one downloaded cohort file: all of it in one transaction, or nothing."""
    header, body = read_header(binary)
    columns = column_map(header, job.amplitude_id_field)
    width = len(header)
    result = CohortResult()
    cohort_id, cohort_name = str(cohort["id"]), str(cohort.get("name") or cohort["id"])
    imported = ImportedCohort(
        workspace_id=job.workspace_id,
        cohort_id=cohort_id,
        name=cohort_name,
        last_computed=_epoch(cohort.get("lastComputed")),
        names_property=job.cohort_names_field,
    )
    # LiveProgress: the console sees the load move before it commits.
    with LiveProgress(run) as progress, transaction.atomic(), connection.cursor() as cursor:
        # A lost commit is redone by the next run (the ledger is idempotent), so the import does not
        # wait for its WAL flush.
        cursor.execute("SET LOCAL synchronous_commit = off")
        raw = _create_raw(cursor, width)
        try:
            try:
                with transaction.atomic():  # a savepoint: a refused row costs only the fast attempt
                    _copy_fast(cursor, raw, body, width)
                cursor.execute(f"SELECT count(*) FROM {raw}")
                result.rows_read = result.staged = cursor.fetchone()[0]
            except (psycopg.Error, DatabaseError):
                logger.info("cohort %s: the file needs row-by-row checks (COPY refused a row)", cohort_id)
                _copy_checked(cursor, raw, binary, width, result)
        except CORRUPT as exc:
            raise CohortFileError(f"The cohort file is corrupt near row {result.rows_read + 2}: {exc}") from None

        progress.report(
            f"loading {cohort_name}: {result.rows_read:,} rows read, matching people",
            rows_done=run.rows_done + result.rows_read,
        )

        def people_created(created: int) -> None:
            progress.report(f"loading {cohort_name}: {created:,} new people, writing the membership")

        loaded = load_cohort(
            raw, columns, imported, cause=Cause("import", "import_run", run.pk), people_created=people_created
        )
    for line in loaded.unidentified_lines:
        result.skip(line, "no usable identifier (amplitude_id and user_id blank or blocked)")
    result.profiles_created, result.profiles_updated = loaded.profiles_created, loaded.profiles_updated
    result.entered, result.exited = loaded.entered, loaded.exited
    return result


def _epoch(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


class _CohortRequest:
    """A cohort asked of Amplitude, computing there while the run loads the cohorts before it.

    Amplitude takes from seconds to many minutes to compute a cohort file, each cohort on its own,
    so a run asks for the next SOURCES_COHORT_LOOKAHEAD cohorts before it loads the current one, and
    a thread polls for each (HTTP only, never the database; a poll holds a request slot only while
    in flight). What went wrong (AmplitudeError, QuotaExceeded) is raised when the run gets there.
    """

    def __init__(self, job: CohortImportJob, client: AmplitudeClient, cohort: dict) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.request_id = ""
        try:
            quota.consume(job.project)  # counted when asked for: Amplitude counts the request, not the success
            self.request_id = client.request_cohort(
                str(cohort["id"]), props=job.include_properties, prop_keys=job.prop_keys
            )
        except (AmplitudeError, quota.QuotaExceeded) as exc:
            self._error = exc
            return
        client = client.for_thread()
        self._thread = threading.Thread(target=self._wait, args=(client,), name="cohort-request", daemon=True)
        self._thread.start()

    def _wait(self, client: AmplitudeClient) -> None:
        def unless_abandoned(_polls: int) -> None:
            if self._stop.is_set():
                raise Cancelled("cohort request abandoned")

        try:
            client.wait_for_cohort(self.request_id, on_poll=unless_abandoned)
        except BaseException as exc:  # noqa: BLE001 - handed to the run when it gets to this cohort
            self._error = exc

    def ready(self) -> str:
        """The request id once Amplitude has the file ready; raises what went wrong."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.request_id

    def abandon(self) -> None:
        """Stop polling (at the next answer); the run ended before it got to this cohort."""
        self._stop.set()


def import_one_cohort(
    run: ImportRun, job: CohortImportJob, client: AmplitudeClient, cohort: dict, request: _CohortRequest | None = None
) -> CohortResult:
    """Request (unless `request` already did), wait for, download and load one cohort."""
    cohort_id, name = str(cohort["id"]), cohort.get("name") or cohort["id"]
    if request is None:
        transition(run, phase=f"requesting cohort {name}")
        request = _CohortRequest(job, client, cohort)
    transition(run, phase=f"waiting for Amplitude to compute {name}")
    request_id = request.ready()
    transition(run, phase=f"loading {name} (as it downloads)")
    download = GrowingDownload(client, request_id)
    try:
        result = load_cohort_file(run, job, cohort, download.reader())
        size = download.size
    finally:
        download.close()
    logger.info(
        "cohort %s imported by run %s: %s bytes, %s rows, +%s -%s",
        cohort_id,
        run.pk,
        size,
        result.rows_read,
        result.entered,
        result.exited,
    )
    return result


def run_cohort_import(run: ImportRun, client: AmplitudeClient | None = None) -> str:
    """Import every selected cohort; returns an error summary ('' when all succeeded).

    Cohorts are loaded one by one, in order; the next ones are already asked of Amplitude (see
    _CohortRequest), so their computing overlaps this one's loading.
    """
    job = run.cohort_job
    client = client or AmplitudeClient.for_project(job.project)
    transition(run, phase="listing cohorts")
    listed = {str(c["id"]): c for c in client.list_cohorts()}
    wanted = list(job.cohort_ids) or [cid for cid, c in listed.items() if not c.get("archived")]
    if not job.cohort_ids and job.last_cohort_count != len(wanted):
        CohortImportJob.objects.filter(pk=job.pk).update(last_cohort_count=len(wanted))
    transition(run, rows_expected=sum(int(listed[c].get("size") or 0) for c in wanted if c in listed))
    found = [cid for cid in wanted if cid in listed]
    # The whole run or nothing: a budget that covers only some of the cohorts would leave the run
    # half-applied (the project grew since the count the run was queued with).
    quota.check(job.project, len(found))
    requests: dict[str, _CohortRequest] = {}
    errors: list[str] = []
    try:
        for cohort_id in wanted:
            cohort = listed.get(cohort_id)
            if cohort is None:
                errors.append(f"cohort {cohort_id}: not found in the Amplitude project")
                continue
            position = found.index(cohort_id)
            transition(run, phase=f"requesting cohort {cohort.get('name') or cohort_id}")
            for ahead in found[position : position + 1 + max(settings.SOURCES_COHORT_LOOKAHEAD, 0)]:
                if ahead not in requests:
                    requests[ahead] = _CohortRequest(job, client, listed[ahead])
            try:
                result = import_one_cohort(run, job, client, cohort, requests.pop(cohort_id))
            except (AmplitudeError, CohortFileError, quota.QuotaExceeded) as exc:
                errors.append(f"cohort {cohort_id} ({cohort.get('name')}): {exc}")
                bump_counts(run, {"cohorts_failed": 1})
                transition(run, rows_done=run.rows_done)  # takes back rows its live progress reported
                continue
            counts = result.as_counts()
            cohort_counts = {k: v for k, v in counts.items() if k not in ("skipped_reasons", "skipped_samples")}
            bump_counts(run, {**counts, "cohorts_imported": 1})
            run.counts.setdefault("cohorts", {})[cohort_id] = cohort_counts
            transition(run, counts=run.counts, rows_done=run.rows_done + result.rows_read)
    finally:
        for request in requests.values():  # only when the run stops early
            request.abandon()
    return "; ".join(errors)


def count_cohorts_to_import(job: CohortImportJob) -> None:
    """Before the first run of an "every cohort" job: list the project's cohorts (a listing costs no
    download) so the quota check counts the downloads it will make, not a guess of one. Later runs
    use the count their previous run saw (last_cohort_count); the run itself checks again after
    listing. If Amplitude cannot be reached, the run will meet the same error and say so."""
    if job.cohort_ids or job.last_cohort_count:
        return
    try:
        listed = list_project_cohorts(job.project)
    except AmplitudeError as exc:
        logger.info("job %s: cohorts not counted before its run (%s)", job.pk, exc)
        return
    job.last_cohort_count = sum(1 for cohort in listed if not cohort["archived"])
    CohortImportJob.objects.filter(pk=job.pk).update(last_cohort_count=job.last_cohort_count)


def list_project_cohorts(project) -> list[dict]:
    """The project's cohorts (id, name, size, last computed): proves key, secret and region are right.

    The listing is also kept (AmplitudeCohort) for the console's cohort picker."""
    cohorts = fetch_project_cohorts(project)
    remember_listing(project, cohorts)
    return cohorts


def fetch_project_cohorts(project) -> list[dict]:
    """Amplitude's listing of the project's cohorts, nothing kept: also the console's test of a
    project not saved yet (its keys and host as typed)."""
    return [
        {
            "id": str(c.get("id")),
            "name": c.get("name"),
            "size": c.get("size"),
            "last_computed": _epoch(c.get("lastComputed")),
            "archived": bool(c.get("archived")),
        }
        for c in AmplitudeClient.for_project(project).list_cohorts()
        if isinstance(c, dict)
    ]


def remember_listing(project, cohorts: list[dict], now: datetime | None = None) -> None:
    """Keep Amplitude's listing as the picker's table: new and changed cohorts written, those no longer
    listed removed. Whatever Amplitude sends, what is kept can be stored (text without NUL or lone
    surrogates, bounded; a size that is not a whole number is unknown)."""
    now = now or timezone.now()
    rows = {}
    for cohort in cohorts:
        cohort_id = _storable(cohort.get("id"), 255)
        if not cohort_id or len(str(cohort.get("id"))) > 255:
            continue  # an id that long is no Amplitude cohort id, and a cut one would name another
        size = cohort.get("size")
        rows[cohort_id] = AmplitudeCohort(
            project=project,
            cohort_id=cohort_id,
            name=_storable(cohort.get("name"), 500),
            size=size if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**63 else None,
            last_computed=cohort.get("last_computed"),
            archived=bool(cohort.get("archived")),
            listed_at=now,
        )
    with transaction.atomic():
        AmplitudeCohort.objects.filter(project=project).exclude(cohort_id__in=list(rows)).delete()
        AmplitudeCohort.objects.bulk_create(
            rows.values(),
            update_conflicts=True,
            unique_fields=["project", "cohort_id"],
            update_fields=["name", "size", "last_computed", "archived", "listed_at"],
        )


def _storable(value, limit: int) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"
    return text[:limit]
