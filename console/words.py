"""Stored values said in words a marketer reads: an import run's counts as labelled numbers, a
profile property's value as text (never a Python dict or an ISO timestamp)."""

from __future__ import annotations

import datetime as dt
import re

from django.utils.dateparse import parse_datetime

from console import timefmt

# An import run's counts (integrations.sources ImportRun.counts), in the order a reader wants them.
IMPORT_COUNTS = {
    "cohorts_imported": ("cohort imported", "cohorts imported"),
    "cohorts_failed": ("cohort failed", "cohorts failed"),
    "windows": ("hour window", "hour windows"),
    "rows_read": ("row read", "rows read"),
    "events_loaded": ("event loaded", "events loaded"),
    "duplicates": ("duplicate ignored", "duplicates ignored"),
    "profiles_created": ("new person", "new people"),
    "profiles_updated": ("person updated", "people updated"),
    "entered": ("joined", "joined"),
    "exited": ("left", "left"),
    "window_splits": ("window split after a timeout", "windows split after a timeout"),
    "downloads": ("cohort download", "cohort downloads"),
}
NOT_SHOWN = {"cohorts", "skipped_lines", "skipped_samples", "skipped_reasons", "skipped"}


def _plain(name: str) -> str:
    return name.replace("_", " ")


def import_counts(counts: dict | None) -> list[str]:
    """['900 rows read', '6 new people', '2 rows skipped (1 no user id, 1 bad time)']; zeros left out."""
    counts = counts or {}
    said = []
    for name, (one, many) in IMPORT_COUNTS.items():
        value = counts.get(name)
        if isinstance(value, int) and value:
            said.append(f"{value:,} {one if value == 1 else many}")
    for name, value in counts.items():  # a count added later still reads as words
        if name not in IMPORT_COUNTS and name not in NOT_SHOWN and isinstance(value, int) and value:
            said.append(f"{value:,} {_plain(name)}")
    skipped = counts.get("skipped") or 0
    if skipped:
        reasons = counts.get("skipped_reasons") or {}
        why = ", ".join(f"{n:,} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        said.append(f"{skipped:,} row{'s' if skipped != 1 else ''} skipped" + (f" ({why})" if why else ""))
    return said


ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def property_value(value) -> str:
    """A profile property as text: dicts as 'name: value' pairs, lists joined, booleans yes/no,
    timestamps in the workspace's zone."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {property_value(item)}" for key, item in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(property_value(item) for item in value) or "—"
    if isinstance(value, str) and ISO_MOMENT.match(value):
        moment = parse_datetime(value)
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return timefmt.when(moment)
    return str(value)


def property_name(name: str) -> str:
    """'amplitude_cohort_names' -> 'Amplitude cohort names' (the stored key stays in a tooltip)."""
    plain = _plain(name).strip()
    return plain[:1].upper() + plain[1:]


# Partner settings shown on the destination form: the names a marketer knows them by. A name not
# listed reads as its words, acronyms in capitals ("list_id_path" -> "List ID path").
CONFIG_LABELS = {
    "base_url": "Partner address (base URL)",
    "create_path": "Path that creates the list",
    "add_path": "Path that adds people",
    "remove_path": "Path that removes people",
    "list_id_path": "Where the answer names the new list (JSON path)",
    "batch_size": "People per request",
    "populate_batch_size": "People per campaign upload",
    "concurrency": "Requests at once",
    "app_guid": "Kochava app GUID",
}
ACRONYMS = {"url": "URL", "id": "ID", "ids": "IDs", "api": "API", "guid": "GUID", "json": "JSON", "http": "HTTP"}


def field_label(name: str, label: str | None = None) -> str:
    """A label given by hand wins; DRF's automatic one ("Base url", from the name) does not."""
    automatic = name.replace("_", " ").capitalize()
    if label and str(label) != automatic:
        return str(label)
    if name in CONFIG_LABELS:
        return CONFIG_LABELS[name]
    words = [ACRONYMS.get(word, word) for word in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


# Where a segment comes from, in words: two "Power Users" (one pushed by Amplitude's cohort sync,
# one imported from the project) are told apart by this wherever a segment is named or chosen.
SEGMENT_SOURCES = {
    "partner_amplitude": "pushed by Amplitude",
    "amplitude_import": "imported from Amplitude",
    "segment_trait": "from Segment/RudderStack traits",
    "manual": "made by hand",
}


def segment_source(segment_type: str) -> str:
    return SEGMENT_SOURCES.get(segment_type, segment_type.replace("_", " "))


def segment_types() -> list[tuple[str, str]]:
    """(value, words) for a 'where from' filter, first letter capitalised."""
    return [(value, words[:1].upper() + words[1:]) for value, words in SEGMENT_SOURCES.items()]


def schedule(job) -> str:
    if getattr(job, "cadence", "") == "daily" and getattr(job, "time_of_day", None):
        return f"Daily at {job.time_of_day:%H:%M} {job.timezone or 'UTC'}"
    return job.get_cadence_display()


CAUSES = {"import_run": "import run", "inbound_batch": "push", "sync_run": "sync run", "erasure": "erasure"}


def cause(cause_type: str, cause_id) -> str:
    what = CAUSES.get(cause_type, (cause_type or "change").replace("_", " "))
    return f"{what} #{cause_id}" if cause_id else what
