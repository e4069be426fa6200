"""Cohort import: request → poll → download → COPY → upsert profiles → set difference into the ledger.

Per cohort, everything that changes the console's data happens in ONE transaction (staging,
profiles, identities, properties, segment, ledger): a failed or killed run leaves the segment's
membership exactly as it was. The file is streamed to a temporary file and from there through
csv.reader into COPY, so a 2-million-row cohort never sits in memory.

The file: RFC-4180 CSV, every value quoted, header first; `amplitude_id` may appear twice (with
props=1), `user_id` is empty for anonymous users; optionally gzip (sniffed, whatever the headers say).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from django.conf import settings
from django.db import connection, transaction

from audiences.events import resolve_staged
from audiences.ledger import Cause, replace_members
from audiences.models import Segment, SegmentType
from integrations.sources import quota
from integrations.sources.amplitude import AmplitudeClient, AmplitudeError
from integrations.sources.models import CohortImportJob, ImportRun
from integrations.sources.runs import bump_counts, transition

logger = logging.getLogger(__name__)

csv.field_size_limit(1 << 20)  # a long property value must not stop a 2-million-row import

# The seed's default mapping (lytics-amplitude.txt, "Import Cohorts" fields): file column → profile properties.
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
STAGE = "cohort_stage"


class CohortFileError(Exception):
    """The cohort file cannot be imported as a whole (no amplitude_id column, not CSV, empty…)."""


@dataclass
class CsvPlan:
    """Which file positions feed which staging columns: tolerant of order, repeats and extras."""

    header: list[str]
    amplitude_id: int
    user_id: int | None
    properties: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # (position, property keys)

    @classmethod
    def from_header(cls, header: list[str]) -> CsvPlan:
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
        return cls(header, names.index("amplitude_id"), user_id, properties)


def open_text(binary: BinaryIO) -> io.TextIOWrapper:
    """Text view of a downloaded file, gunzipping when it starts with the gzip magic 0x1f8b."""
    binary.seek(0)
    magic = binary.read(2)
    binary.seek(0)
    stream = gzip.GzipFile(fileobj=binary, mode="rb") if magic == b"\x1f\x8b" else binary
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")


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
        return {"rows_read": self.rows_read, "profiles_created": self.profiles_created,
                "profiles_updated": self.profiles_updated, "entered": self.entered, "exited": self.exited,
                "skipped": sum(self.skipped_reasons.values()), "skipped_reasons": dict(self.skipped_reasons),
                "skipped_samples": self.skipped_samples}


def _stage_rows(reader, plan: CsvPlan, result: CohortResult, copy) -> None:
    width = len(plan.header)
    ai, _ui = plan.amplitude_id, plan.user_id
    positions = [position for position, _keys in plan.properties]
    line = 1
    for row in reader:
        line += 1
        if len(row) != width:
            if not row:  # a blank line (e.g. a trailing newline) is not a row
                continue
            result.rows_read += 1
            result.skip(line, f"{len(row)} fields where the header has {width}")
            continue
        result.rows_read += 1
        copy.write_row((line, row[ai] or None, *[row[p] or None for p in positions]))
        result.staged += 1


def load_cohort_file(run: ImportRun, job: CohortImportJob, cohort: dict, binary: BinaryIO) -> CohortResult:
    """Apply one downloaded cohort file: all of it in one transaction, or nothing."""
    workspace_id = job.workspace_id
    text = open_text(binary)
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise CohortFileError("The cohort file is empty (not even a header row).") from None
    except (csv.Error, OSError, EOFError) as exc:
        raise CohortFileError(f"The cohort file cannot be read: {exc}") from None
    plan = CsvPlan.from_header(header)
    result = CohortResult()
    columns = [f"p{i}" for i in range(len(plan.properties))]
    cohort_id, cohort_name = str(cohort["id"]), str(cohort.get("name") or cohort["id"])
    last_computed = _epoch(cohort.get("lastComputed"))
    cause = Cause("import", "import_run", run.pk)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
        cursor.execute(
            f"""CREATE TEMP TABLE {STAGE} (line bigint, amplitude_id text,
                {"".join(f"{c} text, " for c in columns)} profile_id bigint) ON COMMIT DROP"""
        )
        try:
            with cursor.copy(f"COPY {STAGE} (line, amplitude_id{''.join(', ' + c for c in columns)}) FROM STDIN") as copy:
                _stage_rows(reader, plan, result, copy)
        except (csv.Error, OSError, EOFError) as exc:  # zlib/gzip errors are OSError/EOFError subclasses
            raise CohortFileError(f"The cohort file is corrupt near row {result.rows_read + 2}: {exc}") from None
        user_column = next((f"p{i}" for i, (pos, _k) in enumerate(plan.properties) if pos == plan.user_id), None)
        keys = [("amplitude_id", "amplitude_id")] + ([("user_id", user_column)] if user_column else [])
        result.profiles_created = resolve_staged(workspace_id, STAGE, keys, source="import")
        cursor.execute(f"SELECT line FROM {STAGE} WHERE profile_id IS NULL ORDER BY line")
        for (line,) in cursor.fetchall():
            result.skip(line, "no usable identifier (amplitude_id and user_id blank or blocked)")

        result.profiles_updated = _merge_properties(cursor, job, plan, columns, cohort_id, cohort_name, last_computed)
        segment, _created = Segment.objects.update_or_create(
            workspace_id=workspace_id, type=SegmentType.AMPLITUDE_IMPORT, external_id=cohort_id,
            defaults={"name": cohort_name[:255], "partner_name": "Amplitude", "last_computed_at": last_computed},
        )
        applied = replace_members(segment, STAGE, cause=cause)
        result.entered, result.exited = applied.added, applied.removed
        if applied.removed:
            _mark_exited(cursor, job, segment, run, cohort_id, cohort_name)
        cursor.execute(f"DROP TABLE {STAGE}")
    return result


def _merge_properties(cursor, job, plan: CsvPlan, columns: list[str], cohort_id: str, cohort_name: str,
                      last_computed: datetime | None) -> int:
    """One UPDATE … FROM staging: the seed's fields merged into Profile.properties (jsonb ||)."""
    pairs: list[str] = []
    params: dict = {"workspace": job.workspace_id, "cid": cohort_id, "cname": cohort_name}
    if job.amplitude_id_field:
        pairs.append("%(amp_field)s::text, amplitude_id")
        params["amp_field"] = job.amplitude_id_field
    for index, (_position, keys) in enumerate(plan.properties):
        for number, key in enumerate(keys):
            name = f"k{index}_{number}"
            params[name] = key
            pairs.append(f"%({name})s::text, {columns[index]}")
    if last_computed:
        pairs.append("'amplitude_last_computed', %(last)s::text")
        params["last"] = last_computed.isoformat()
    # jsonb_build_object takes at most 100 arguments: chain objects of 40 pairs.
    chunks = [pairs[i : i + 40] for i in range(0, len(pairs), 40)] or [[]]
    flat = " || ".join(f"jsonb_build_object({', '.join(chunk)})" for chunk in chunks)
    maps = ["'amplitude_cohort_ids', COALESCE(p.properties->'amplitude_cohort_ids', '{}') || jsonb_build_object(%(cid)s::text, true)"]
    member_checks = ["p.properties->'amplitude_cohort_ids' @> jsonb_build_object(%(cid)s::text, true)"]
    if job.cohort_names_field:
        params["names_field"] = job.cohort_names_field
        maps.append("%(names_field)s::text, COALESCE(p.properties->%(names_field)s, '{}') || jsonb_build_object(%(cname)s::text, true)")
        member_checks.append("p.properties->%(names_field)s @> jsonb_build_object(%(cname)s::text, true)")
    cursor.execute(
        f"""UPDATE audiences_profile p
            SET properties = p.properties || s.props || jsonb_build_object({", ".join(maps)}), updated_at = now()
            FROM (SELECT DISTINCT ON (profile_id) profile_id, jsonb_strip_nulls({flat}) AS props
                  FROM {STAGE} WHERE profile_id IS NOT NULL ORDER BY profile_id, line DESC) s
            WHERE p.id = s.profile_id AND p.workspace_id = %(workspace)s
              AND NOT (p.properties @> s.props AND COALESCE({" AND ".join(member_checks)}, false))""",
        params,
    )
    return cursor.rowcount


def _mark_exited(cursor, job, segment: Segment, run: ImportRun, cohort_id: str, cohort_name: str) -> None:
    """People who left: their cohort maps say false (the seed's map[string]bool)."""
    sets = "COALESCE(properties->'amplitude_cohort_ids', '{}') || jsonb_build_object(%(cid)s::text, false)"
    value = f"jsonb_build_object('amplitude_cohort_ids', {sets})"
    if job.cohort_names_field:
        value += (" || jsonb_build_object(%(names_field)s::text, COALESCE(properties->%(names_field)s, '{}')"
                  " || jsonb_build_object(%(cname)s::text, false))")
    cursor.execute(
        f"""UPDATE audiences_profile SET properties = properties || {value}, updated_at = now()
            WHERE workspace_id = %(workspace)s AND id IN (
                SELECT profile_id FROM audiences_membershipchange
                WHERE segment_id = %(segment)s AND cause_type = 'import_run' AND cause_id = %(run)s
                  AND action = 'removed')""",
        {"workspace": job.workspace_id, "segment": segment.pk, "run": run.pk, "cid": cohort_id, "cname": cohort_name,
         "names_field": job.cohort_names_field},
    )


def _epoch(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


def import_one_cohort(run: ImportRun, job: CohortImportJob, client: AmplitudeClient, cohort: dict) -> CohortResult:
    cohort_id, name = str(cohort["id"]), cohort.get("name") or cohort["id"]
    quota.consume(job.project)  # counted when asked for: Amplitude counts the request, not the success
    transition(run, phase=f"requesting cohort {name}")
    request_id = client.request_cohort(cohort_id, props=job.include_properties, prop_keys=job.prop_keys)
    transition(run, phase=f"waiting for Amplitude to compute {name}")
    client.wait_for_cohort(request_id)
    with tempfile.TemporaryFile(dir=settings.SOURCES_TEMP_DIR) as binary:
        transition(run, phase=f"downloading {name}")
        size = client.download_cohort(request_id, binary)
        transition(run, phase=f"loading {name}")
        result = load_cohort_file(run, job, cohort, binary)
    logger.info("cohort %s imported by run %s: %s bytes, %s rows, +%s -%s", cohort_id, run.pk, size,
                result.rows_read, result.entered, result.exited)
    return result


def run_cohort_import(run: ImportRun, client: AmplitudeClient | None = None) -> str:
    """Import every selected cohort; returns an error summary ('' when all succeeded)."""
    job = run.cohort_job
    client = client or AmplitudeClient.for_project(job.project)
    transition(run, phase="listing cohorts")
    listed = {str(c["id"]): c for c in client.list_cohorts()}
    wanted = list(job.cohort_ids) or [cid for cid, c in listed.items() if not c.get("archived")]
    if not job.cohort_ids and job.last_cohort_count != len(wanted):
        CohortImportJob.objects.filter(pk=job.pk).update(last_cohort_count=len(wanted))
    transition(run, rows_expected=sum(int(listed[c].get("size") or 0) for c in wanted if c in listed))
    errors: list[str] = []
    for cohort_id in wanted:
        cohort = listed.get(cohort_id)
        if cohort is None:
            errors.append(f"cohort {cohort_id}: not found in the Amplitude project")
            continue
        try:
            result = import_one_cohort(run, job, client, cohort)
        except (AmplitudeError, CohortFileError, quota.QuotaExceeded) as exc:
            errors.append(f"cohort {cohort_id} ({cohort.get('name')}): {exc}")
            bump_counts(run, {"cohorts_failed": 1})
            continue
        counts = result.as_counts()
        cohort_counts = {k: v for k, v in counts.items() if k not in ("skipped_reasons", "skipped_samples")}
        bump_counts(run, {**counts, "cohorts_imported": 1})
        run.counts.setdefault("cohorts", {})[cohort_id] = cohort_counts
        transition(run, counts=run.counts, rows_done=run.rows_done + result.rows_read)
    return "; ".join(errors)


def list_project_cohorts(project) -> list[dict]:
    """The project's cohorts (id, name, size, last computed): proves key, secret and region are right."""
    cohorts = AmplitudeClient.for_project(project).list_cohorts()
    return [{"id": str(c.get("id")), "name": c.get("name"), "size": c.get("size"),
             "last_computed": _epoch(c.get("lastComputed")), "archived": bool(c.get("archived"))} for c in cohorts]

