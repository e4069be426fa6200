"""Event import from Amplitude's Export API, window by window of inclusive UTC hours.

The first run starts `backfill_days` before now (0 = from now on); later runs start at the job's
cursor (the end of the last window loaded). Each window's zip is streamed to a temporary file,
then read member by member (gzipped JSON lines) straight into audiences.events — and the events,
the profiles' event counts and the cursor move in ONE transaction: a truncated zip or a corrupt
member fails the window with nothing of it applied, and the next run starts at the same place.

Amplitude's answers: 404 = no data in the window (the cursor still moves); 400 = over 4 GB, and
504 = too slow: both split the window in halves and try again, down to one hour.

While one window is applied (PostgreSQL's work), the next one is already downloading in a thread
(HTTP and a temporary file only, never the database): at most two windows' zips are on disk.
"""

from __future__ import annotations

import gzip
import logging
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audiences.events import EventCounts, store_event_files
from integrations.sources.amplitude import AmplitudeClient, AmplitudeError
from integrations.sources.models import EventImportJob, ImportRun
from integrations.sources.runs import LiveProgress, transition

logger = logging.getLogger(__name__)
UP_TO_DATE = "up to date"  # the phase of a run that found no new hour to import: it ends so, not "done"

HOUR = timedelta(hours=1)


class ExportFileError(Exception):
    """The export zip (or one of its members) is broken: the window is not applied."""


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def export_files(archive: zipfile.ZipFile, reading: list[str]) -> Iterator[tuple[str, BinaryIO]]:
    """(file name, decompressed byte stream) for every member, in name order; streamed, never in memory.

    `reading[0]` is set to the member being read, for the error message when it turns out corrupt.
    """
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        if info.is_dir():
            continue
        name = info.filename.rsplit("/", 1)[-1]
        try:
            member = archive.open(info)
        except (zipfile.BadZipFile, zlib.error, OSError) as exc:
            raise ExportFileError(f"Member {name} of the export is corrupt: {exc}") from None
        with member:
            reading[0] = name
            yield name, (gzip.GzipFile(fileobj=member, mode="rb") if name.endswith(".gz") else member)


def store_export(workspace_id: int, binary: BinaryIO, progress=None) -> EventCounts:
    """Every member of the zip in `binary` into audiences.events, in the caller's transaction.

    `progress`: see audiences.events.store_event_files."""
    try:
        archive = zipfile.ZipFile(binary)
    except zipfile.BadZipFile as exc:
        raise ExportFileError(f"The export is not a complete zip file (truncated download?): {exc}") from None
    reading = [""]
    with archive:
        try:
            return store_event_files(workspace_id, export_files(archive, reading), source="import", progress=progress)
        except (zipfile.BadZipFile, zlib.error, gzip.BadGzipFile, EOFError, OSError) as exc:
            raise ExportFileError(f"Member {reading[0]} of the export is corrupt: {exc}") from None


class _Cancelled(Exception):
    pass


class _StoppableFile:
    """A temporary file whose writes fail once `stop` is set: an abandoned download ends at its next chunk."""

    def __init__(self, stop: threading.Event) -> None:
        self.file = tempfile.TemporaryFile(dir=settings.SOURCES_TEMP_DIR)  # noqa: SIM115 - closed by its reader
        self.stop = stop

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise _Cancelled("download abandoned")
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def download(
    client: AmplitudeClient, first: datetime, last: datetime, stop: threading.Event | None = None
) -> tuple[BinaryIO, int | None]:
    """[first, last] into a new temporary file: (file, size); size None = no data (404). Raises AmplitudeError."""
    dest = _StoppableFile(stop or threading.Event())
    try:
        size = client.export(first, last, dest)
    except BaseException:
        dest.file.close()
        raise
    return dest.file, size


class Prefetch:
    """The export of one window, downloading in its own thread (with its own HTTP session)."""

    def __init__(self, client: AmplitudeClient, first: datetime, last: datetime) -> None:
        self.window = (first, last)
        self._client = client.for_thread()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcome: tuple[BinaryIO, int | None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            outcome = download(self._client, *self.window, stop=self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits for it
            self._error = exc
            return
        with self._lock:
            if self._stop.is_set():
                outcome[0].close()
            else:
                self._outcome = outcome

    def result(self) -> tuple[BinaryIO, int | None]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome

    def abandon(self) -> None:
        """Stop the download (at its next chunk) and drop its file; returns without waiting."""
        with self._lock:
            self._stop.set()
            if self._outcome is not None:
                self._outcome[0].close()
                self._outcome = None


def load_window(
    run: ImportRun,
    job: EventImportJob,
    client: AmplitudeClient,
    first: datetime,
    last: datetime,
    totals: EventCounts,
    attempt: int = 0,
    prefetched: Prefetch | None = None,
) -> None:
    """Fetch and apply [first, last] (inclusive hours); split on 400/504. Moves the cursor to last + 1 h.

    `prefetched` is this window's download already under way (its first attempt).
    """
    span = int((last - first) / HOUR) + 1
    transition(run, phase=f"exporting {first:%Y-%m-%d %H}:00 – {last:%Y-%m-%d %H}:59 UTC")
    try:
        binary, size = prefetched.result() if prefetched else download(client, first, last)
    except AmplitudeError as exc:
        if exc.status in (400, 504) and span > 1:
            middle = first + HOUR * (span // 2 - 1)
            logger.info("export %s..%s answered %s: splitting", first, last, exc.status)
            run.counts["window_splits"] = run.counts.get("window_splits", 0) + 1
            load_window(run, job, client, first, middle, totals)
            load_window(run, job, client, middle + HOUR, last, totals)
            return
        if exc.status == 504 and attempt < settings.SOURCES_HTTP_RETRIES:
            client.sleep(settings.SOURCES_RETRY_BACKOFF * 2**attempt)
            return load_window(run, job, client, first, last, totals, attempt + 1)
        if exc.status == 504:
            raise AmplitudeError(
                f"Amplitude timed out (504) exporting the single hour {first:%Y-%m-%d %H}:00 even after retries.",
                status=504,
                transient=True,
            ) from None
        raise
    with binary:
        label = f"loading {first:%Y-%m-%d %H}:00 – {last:%Y-%m-%d %H}:59 UTC"
        transition(run, phase=label)
        binary.seek(0)
        # The window's transaction holds everything until it commits: LiveProgress shows it move.
        with LiveProgress(run) as live, transaction.atomic():

            def progress(what: str, lines: int, step: bool) -> None:  # files: at most one report a second
                live.report(f"{label}: {what}", rows_done=totals.read + lines, unless_within=0.0 if step else 1.0)

            window = store_export(job.workspace_id, binary, progress) if size else EventCounts()
            EventImportJob.objects.filter(pk=job.pk).update(cursor=last + HOUR)
            totals.add(window)
            counts = {
                **run.counts,
                **totals.as_dict(),
                "windows": run.counts.get("windows", 0) + 1,
                "empty_windows": run.counts.get("empty_windows", 0) + (0 if size else 1),
            }
            transition(run, counts=counts, rows_done=totals.read)
    job.cursor = last + HOUR


def run_event_import(run: ImportRun, client: AmplitudeClient | None = None, now: datetime | None = None) -> str:
    job = run.event_job
    client = client or AmplitudeClient.for_project(job.project)
    now = now or timezone.now()
    # Amplitude exports an hour only ~2 h after it ends: stop before the hours it may still fill.
    end = floor_hour(now) - timedelta(hours=settings.SOURCES_EXPORT_LAG_HOURS) + HOUR  # exclusive
    start = job.cursor or (floor_hour(now) - timedelta(days=job.backfill_days) if job.backfill_days else end)
    if start >= end:
        if job.cursor is None:
            EventImportJob.objects.filter(pk=job.pk).update(cursor=end)
        transition(run, phase=UP_TO_DATE, counts={**run.counts, "windows": 0})
        return ""
    transition(run, rows_expected=None)
    totals = EventCounts()
    step = timedelta(hours=max(settings.SOURCES_EXPORT_WINDOW_HOURS, 1))
    windows = []
    first = start
    while first < end:
        last = min(first + step, end) - HOUR
        windows.append((first, last))
        first = last + HOUR
    # Window i + 1 downloads while window i is applied; the windows are still applied in order.
    ahead = Prefetch(client, *windows[0])
    try:
        for index, (first, last) in enumerate(windows):
            current, ahead = ahead, Prefetch(client, *windows[index + 1]) if index + 1 < len(windows) else None
            load_window(run, job, client, first, last, totals, prefetched=current)
    finally:
        if ahead is not None:
            ahead.abandon()
    return ""
