"""Reading a cohort file while it downloads: the download thread, gzip, the CSV header and rows.

The file: RFC-4180 CSV, every value quoted, header first; `amplitude_id` may appear twice (with
props=1), `user_id` is empty for anonymous users; optionally gzip (sniffed, whatever the headers
say). AmplitudeClient.download_cohort fetches it (following the redirect to the pre-signed link);
GrowingDownload runs that in a thread into a temporary file which the loader reads while it grows.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import tempfile
import threading
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from django.conf import settings

from integrations.sources.amplitude import AmplitudeClient

csv.field_size_limit(1 << 20)  # a long property value must not stop a 2-million-row import

CHUNK = 1 << 20  # bytes read (and handed to COPY) at a time
# What reading a corrupt file raises: csv's errors, and gzip's (a bad checksum or a truncated file is
# an OSError or EOFError, but an invalid deflate block is zlib.error, which is neither).
CORRUPT = (csv.Error, OSError, EOFError, zlib.error)


class CohortFileError(Exception):
    """The cohort file cannot be imported as a whole (no amplitude_id column, not CSV, empty…)."""


class Cancelled(Exception):
    """Raised inside a download or poll thread the run no longer waits for, to end it."""


def _unzipped(binary: BinaryIO) -> BinaryIO:
    """The downloaded file's bytes from the start, gunzipped when it starts with the gzip magic 0x1f8b
    (whatever the headers said)."""
    binary.seek(0)
    magic = binary.read(2)
    binary.seek(0)
    return gzip.GzipFile(fileobj=binary, mode="rb") if magic == b"\x1f\x8b" else binary


def read_header(binary: BinaryIO) -> tuple[list[str], BinaryIO]:
    """Parse the header line; return it with a byte stream positioned at the first data row."""
    stream = _unzipped(binary)
    try:
        first = stream.readline(1 << 20)
    except CORRUPT as exc:
        raise CohortFileError(f"The cohort file cannot be read: {exc}") from None
    if not first.strip():
        raise CohortFileError("The cohort file is empty (not even a header row).")
    try:
        header = next(csv.reader([first.decode("utf-8-sig", errors="replace")]))
    except csv.Error as exc:
        raise CohortFileError(f"The cohort file cannot be read: {exc}") from None
    return header, stream


def data_rows(binary: BinaryIO) -> Iterator[list[str]]:
    """The file's rows after the header, parsed one by one by csv.reader (gunzipped if need be).

    Raises one of CORRUPT where the file is corrupt.
    """
    text = io.TextIOWrapper(_unzipped(binary), encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text)
    next(reader, None)  # the header, parsed by read_header
    yield from reader


class GrowingDownload:
    """The cohort file downloading in its own thread into a temporary file that can be read while
    it grows: COPY takes in the first megabytes while the rest is still arriving, instead of
    waiting for the whole download. A reader blocks until the bytes it wants are written or the
    download ended; the download's error (AmplitudeError: the body broke off…) is raised in the
    reader. Always close() it: that stops an unfinished download and drops the file.
    """

    def __init__(self, client: AmplitudeClient, request_id: str) -> None:
        self.file = tempfile.TemporaryFile(dir=settings.SOURCES_TEMP_DIR)  # noqa: SIM115 - closed by close()
        self.size: int | None = None
        self._written = 0
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        client = client.for_thread()
        self._thread = threading.Thread(
            target=self._run, args=(client, request_id), name="cohort-download", daemon=True
        )
        self._thread.start()

    def _run(self, client: AmplitudeClient, request_id: str) -> None:
        try:
            self.size = client.download_cohort(request_id, self)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            self._error = exc
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    # The download's side (AmplitudeClient.download_cohort writes here).
    def write(self, data: bytes) -> int:
        if self._stop:
            raise Cancelled("download abandoned")
        self.file.write(data)
        self.file.flush()  # visible to the reader's pread
        with self._changed:
            self._written += len(data)
            self._changed.notify_all()
        return len(data)

    def flush(self) -> None:
        self.file.flush()

    # The reader's side.
    def pread(self, size: int, position: int) -> bytes:
        with self._changed:
            while self._written <= position and not self._done:
                self._changed.wait()
            if self._error is not None:
                raise self._error
            available = self._written - position
        return os.pread(self.file.fileno(), min(size, available), position) if available > 0 else b""

    def length(self) -> int:
        """The whole file's length, once the download has ended."""
        with self._changed:
            while not self._done:
                self._changed.wait()
            if self._error is not None:
                raise self._error
            return self._written

    def reader(self) -> BinaryIO:
        return io.BufferedReader(_GrowingReader(self), buffer_size=CHUNK)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.file.close()


class _GrowingReader(io.RawIOBase):
    def __init__(self, download: GrowingDownload) -> None:
        self.download = download
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.download.pread(len(buffer), self.position)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset += self.download.length()
        elif whence == io.SEEK_CUR:
            offset += self.position
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position
