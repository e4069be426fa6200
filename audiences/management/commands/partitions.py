"""manage.py partitions [--months-ahead N]: create the ledger's and the events' monthly partitions
ahead (audiences.partitions) and list them."""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from audiences.partitions import TABLES, ensure_partitions, is_partitioned, partitions


class Command(BaseCommand):
    help = "Create this month's and the next months' partitions of the ledger and the events; list them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--months-ahead", type=int, default=None, help="Default: PARTITION_MONTHS_AHEAD.")

    def handle(self, *args, months_ahead=None, **options) -> None:
        if months_ahead is not None and not 0 <= months_ahead <= 120:
            raise CommandError("--months-ahead must be between 0 and 120.")
        created = ensure_partitions(months_ahead=months_ahead)
        for name in created:
            self.stdout.write(f"created {name}")
        with connection.cursor() as cursor:
            for spec in TABLES:
                if not is_partitioned(cursor, spec.table):
                    self.stdout.write(f"{spec.table}: not partitioned (run migrate)")
                    continue
                months = [p.month.strftime("%Y-%m") for p in partitions(cursor, spec.table) if p.month]
                span = f"{months[0]} .. {months[-1]}" if months else "none"
                self.stdout.write(f"{spec.table}: {len(months)} monthly partitions ({span}) and a default one")
