"""The cohort file's readers (integrations.sources.cohort_files) on their own, and the load's
answer to files they cannot read."""

import gzip
import io
import random
import threading

import pytest

from audiences.models import Identity, Segment
from integrations.sources.actions import create_run
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohort_files import CohortFileError, GrowingDownload, data_rows, read_header
from integrations.sources.cohorts import load_cohort_file

BODY = b'"amplitude_id","user_id","city"\r\n"1","u-1","Oslo"\r\n"2","","Bergen, Vestland"\r\n'


@pytest.mark.parametrize("packed", [BODY, gzip.compress(BODY)], ids=["plain", "gzip"])
def test_header_and_rows_read_the_same_plain_or_gzipped(packed):
    header, body = read_header(io.BytesIO(packed))
    assert header == ["amplitude_id", "user_id", "city"]
    assert body.read() == BODY.split(b"\r\n", 1)[1]  # positioned at the first data row, unzipped
    assert list(data_rows(io.BytesIO(packed))) == [["1", "u-1", "Oslo"], ["2", "", "Bergen, Vestland"]]


@pytest.mark.parametrize("packed", [b"", b"\r\n", gzip.compress(b"")], ids=["empty", "blank", "empty-gzip"])
def test_a_file_without_a_header_is_refused(packed):
    with pytest.raises(CohortFileError, match="empty"):
        read_header(io.BytesIO(packed))


def test_a_broken_gzip_header_is_refused():
    with pytest.raises(CohortFileError, match="cannot be read"):
        read_header(io.BytesIO(b"\x1f\x8b" + b"\x00" * 20))


class _SlowClient:
    """Stands in for AmplitudeClient.download_cohort: writes the file in pieces, then maybe fails."""

    def __init__(self, pieces, error=None):
        self.pieces, self.error, self.gate, self.written = pieces, error, threading.Event(), 0

    def for_thread(self):
        return self

    def download_cohort(self, request_id, dest):
        for number, piece in enumerate(self.pieces):
            if number == 1:
                self.gate.wait(5)  # the rest only once the reader has had the first piece
            dest.write(piece)
            self.written += 1
        if self.error:
            raise self.error
        return sum(map(len, self.pieces))


def test_a_growing_download_is_read_while_it_arrives():
    client = _SlowClient([BODY[:40], BODY[40:]])
    download = GrowingDownload(client, "req-1")
    try:
        reader = download.reader()
        assert reader.read1(1000) == BODY[:40]  # what has arrived, without waiting for the rest
        client.gate.set()
        assert reader.read() == BODY[40:]
        reader.seek(0)  # the readers sniff gzip from the start
        assert reader.read() == BODY and download.size == len(BODY)
    finally:
        download.close()


def test_a_download_that_breaks_off_raises_in_the_reader():
    client = _SlowClient([BODY[:40]], error=AmplitudeError("broke off", transient=True))
    client.gate.set()
    download = GrowingDownload(client, "req-1")
    try:
        reader = download.reader()
        with pytest.raises(AmplitudeError, match="broke off"):
            while reader.read(8):
                pass
    finally:
        download.close()


def test_closing_an_unfinished_download_stops_it():
    client = _SlowClient([BODY[:10], BODY[10:20], BODY[20:]])
    download = GrowingDownload(client, "req-1")
    assert download.reader().read1(100) == BODY[:10]
    threading.Timer(0.2, client.gate.set).start()  # the download goes on while close() waits for it
    download.close()  # its next write raises Cancelled in the download thread, which ends
    assert client.written == 1 and download.file.closed


@pytest.mark.parametrize(
    "damage",
    [bytes(200), random.Random(2).randbytes(200)],  # a bad checksum (OSError); an invalid block (zlib.error)
    ids=["zeros", "noise"],
)
def test_a_corrupt_gzip_fails_the_cohort_and_applies_nothing(cohort_job, damage):
    rows = b"".join(b'"%d","u-%d"\r\n' % (n, n) for n in range(20000))
    packed = gzip.compress(b'"amplitude_id","user_id"\r\n' + rows)
    broken = packed[: len(packed) // 2] + damage + packed[len(packed) // 2 + len(damage) :]
    run = create_run(cohort_job, enqueue=False)
    with pytest.raises(CohortFileError, match="corrupt near row"):
        load_cohort_file(run, cohort_job, {"id": "gz1", "name": "Broken"}, io.BytesIO(broken))
    assert not Segment.objects.filter(external_id="gz1").exists()
    assert not Identity.objects.filter(value="u-1").exists()
