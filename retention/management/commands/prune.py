"""manage.py prune [--dry-run]: remove what is past its retention window (retention.prune)."""

from django.core.management.base import BaseCommand, CommandError

from retention.prune import PruneBusy
from retention.tasks import run_and_record


class Command(BaseCommand):
    help = "Remove data older than each workspace's retention windows, in bounded batches."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; remove nothing.")
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per statement (default setting).")

    def handle(self, *args, dry_run=False, batch_size=None, **options) -> None:
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            _record, report = run_and_record(dry_run=dry_run, trigger="command", batch_size=batch_size)
        except PruneBusy as exc:
            raise CommandError(f"{exc}; try again when it has finished.") from exc
        for line in report.lines():
            self.stdout.write(line)
        if not dry_run:
            self.stdout.write(f"{report.batches} batch(es), at most {report.largest_batch} rows each.")
