"""Scale benchmark: the console's pages and API with 10 million people, 50M ledger rows and 50M events.

    python3 dev.py bench scale [--people 10000000] [--segments 500] [--ledger 50000000]
                               [--events 50000000] [--months 24] [--samples 20] [--keep]

Generates (by COPY from this process, not through the API) one workspace in a database of its own
(`<database>_scale`, created next to DATABASE_URL's and dropped at the end unless --keep):
`--people` profiles with a user_id and a device_id each and an email for one in four, `--segments`
segments (the first with about 1M members: 992,255 at the default sizes; the others log-uniform between 100 and 200,000), `--ledger`
membership changes over `--months` months (adds, drops and re-adds, consistent with the members
table and each segment's size) and `--events` events, loaded in two halves: the first over the
same months, the second over the most recent half of them.
Secondary indexes of the ledger and events are dropped during a load and built again after it
(the usual bulk-load order; their definitions are read from the database, so they are whatever the
migrations made). Generation time is printed on its own.

After each half of the events it measures p50/p95 over `--samples` requests of: the dashboard, the
segment list, the 1M-member segment's page and its chart (the 30-day history behind it), people
search by identity, a person trace, the management API's segment list and a segment's member
(profile) list and profile lookup, planning an incremental sync (one day of changes) of the 1M
segment, and one day's pruning (retention.prune, when present), with the rows it removed.
`--keep` keeps the database; a next run with `--keep` measures it again without generating.
Pages go through Django's test client with a signed-in owner (real queries, real templates); the
API with a management key. Target: every page and API call p95 <= 300 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

DAY = 86400
BIG_SEGMENT = 1_000_000
CHUNK = 200_000  # rows per COPY write
TARGET_MS = 300.0
PRUNE_DAYS = 5


# -- a database of its own -------------------------------------------------------------------------


def use_scratch_database(keep: bool) -> tuple[str, str]:
    """Point DATABASE_URL at `<name>_scale` (created fresh); return (original URL, scratch name)."""
    import psycopg

    original = os.environ["DATABASE_URL"]
    parts = urllib.parse.urlsplit(original)
    scratch = parts.path.lstrip("/") + "_scale"
    with psycopg.connect(original, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [scratch]).fetchone()
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{scratch}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{scratch}"')
    os.environ["DATABASE_URL"] = urllib.parse.urlunsplit(parts._replace(path="/" + scratch))
    return original, scratch


def drop_scratch_database(original: str, scratch: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(original, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    print(f"dropped database {scratch}")


# -- generation --------------------------------------------------------------------------------------


class Plan:
    """Sizes, member ranges and ledger shape of each segment; every row is computed from these.

    Segment with m members at the end, t people ever in it, c drop/re-add pairs and lag d: rows
    0..t-1 add people 0..t-1; the next t-m drop people m..t-1; then pair p drops person p % m and,
    from pair d on, re-adds the person dropped d pairs earlier (so a day's changes are real drops and
    real re-adds of different people, as a sync sees them). The d people dropped in the last d pairs
    are out at the end: the segment's size is m - d.
    """

    def __init__(self, people: int, segments: int, ledger: int, months: int, seed: int = 7):
        rng = random.Random(seed)
        self.people = people
        self.days = max(1, round(months * 30.44))
        big = min(BIG_SEGMENT, people)
        sizes = [big] + [
            min(people, int(math.exp(rng.uniform(math.log(100), math.log(200_000))))) for _ in range(segments - 1)
        ]
        total = sum(sizes)
        self.segments = []  # (m, t, c, d, rows, profile offset)
        for index, m in enumerate(sizes):
            rows = max(1, ledger * m // total)
            m = min(m, rows)
            t = min(people, m + m // 5)  # a fifth more were in it once and left
            if rows < 2 * t - m:
                t = m
            c = (rows - (2 * t - m)) // 2
            d = 0 if m <= 1 else min(m - 1, c, max(1, c // 150))  # about three days of pairs
            c = (rows - (2 * t - m) + d) // 2
            offset = (index * 7_919_111) % people
            self.segments.append((m, t, c, d, 2 * t - m + 2 * c - d, offset))

    @staticmethod
    def size(segment) -> int:
        return segment[0] - segment[3]

    def member_count(self) -> int:
        return sum(self.size(s) for s in self.segments)

    def ledger_count(self) -> int:
        return sum(s[4] for s in self.segments)

    @staticmethod
    def row(segment, r: int) -> tuple[int, str]:
        """(person j, action) of ledger row r of a segment."""
        m, t, _c, d, _rows, _offset = segment
        if r < t:
            return r, "added"
        if r < 2 * t - m:
            return m + (r - t), "removed"
        i = r - (2 * t - m)
        if i < d:
            return i % m, "removed"
        k = i - d
        p = d + k // 2
        return ((p % m), "removed") if k % 2 == 0 else ((p - d) % m, "added")

    @staticmethod
    def member_since(segment, j: int) -> int | None:
        """The row that last added person j (< m), None if j is out at the end."""
        m, t, c, d, _rows, _offset = segment
        if j >= c:
            return j  # never dropped: still in since the first adds
        last_drop = j + m * ((c - 1 - j) // m)
        last_add = last_drop + d
        if last_add >= c:
            return None
        return 2 * t - m + d + 2 * (last_add - d) + 1


class Stamps:
    """Seconds since the epoch as PostgreSQL timestamptz text, fast: a datetime per row would cost
    more than the rest of the row (the date part is formatted once per day)."""

    def __init__(self):
        self.day, self.prefix = None, ""

    def __call__(self, ts: float) -> str:
        seconds = int(ts)
        day, rest = divmod(seconds, DAY)
        if day != self.day:
            self.day, self.prefix = day, datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d ")
        hour, rest = divmod(rest, 3600)
        minute, second = divmod(rest, 60)
        return f"{self.prefix}{hour:02d}:{minute:02d}:{second:02d}+00"


def copy_rows(cursor, table: str, columns: str, lines) -> int:
    """COPY text lines (an iterable of str without the newline) into a table; returns the count."""
    count = 0
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = []
        for line in lines:
            buffer.append(line)
            if len(buffer) >= CHUNK:
                copy.write("\n".join(buffer) + "\n")
                count += len(buffer)
                buffer.clear()
        if buffer:
            copy.write("\n".join(buffer) + "\n")
            count += len(buffer)
    return count


def reserve_ids(cursor, table: str, n: int) -> int:
    """The first of n consecutive ids taken from the table's sequence."""
    cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")
    first = cursor.fetchone()[0]
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [first + n])
    return first


def secondary_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the table's indexes that back no constraint."""
    cursor.execute(
        """SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
             AND NOT x.indisunique""",
        [table],
    )
    # A partitioned table's index reads "ON ONLY parent": build it on the partitions too.
    return [(name, sql.replace(" ON ONLY ", " ON ")) for name, sql in cursor.fetchall()]


class Timer:
    def __init__(self):
        self.steps: list[tuple[str, float, int]] = []

    def step(self, label: str, started: float, rows: int = 0) -> None:
        seconds = time.perf_counter() - started
        self.steps.append((label, seconds, rows))
        rate = f"  ({rows / seconds:,.0f} rows/s)" if rows and seconds else ""
        print(f"  {label:<44}{seconds:>8.1f} s  {rows:>12,} rows{rate}", flush=True)


def month_partitions(cursor, table: str, start: datetime) -> None:
    """On a table partitioned by month (audiences.partitions, when present), the months from
    `start` on: otherwise the history would all land in the default partition."""
    try:
        from audiences import partitions
    except ImportError:
        return
    if not partitions.is_partitioned(cursor, table):
        return
    spec = next(spec for spec in partitions.TABLES if spec.table == table)
    month = partitions.month_start(start)
    while month <= partitions.month_start(datetime.now(UTC)):
        partitions.create_month(cursor, spec, month)
        month = partitions.next_month(month)


def bulk_load(cursor, timer: Timer, label: str, table: str, columns: str, lines, start: datetime) -> None:
    """COPY with the table's secondary indexes dropped, then built again."""
    month_partitions(cursor, table, start)
    indexes = secondary_indexes(cursor, table)
    for name, _sql in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    started = time.perf_counter()
    rows = copy_rows(cursor, table, columns, lines)
    timer.step(f"COPY {label}", started, rows)
    started = time.perf_counter()
    cursor.execute("SET maintenance_work_mem = '512MB'")
    for _name, sql in indexes:
        cursor.execute(sql)
    timer.step(f"indexes of {label} ({len(indexes)})", started)


def generate_people(cursor, timer: Timer, workspace_id: int, plan: Plan, start: datetime) -> int:
    n = plan.people
    first = reserve_ids(cursor, "audiences_profile", n)
    created = (start - timedelta(days=1)).isoformat()
    countries = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "ES"]
    platforms = ["iOS", "Android", "Web"]

    def profiles():
        for k in range(n):
            yield (
                f'{first + k}\t{workspace_id}\t{{"country": "{countries[k % 8]}", "platform": "{platforms[k % 3]}", '
                f'"plan": "p{k % 5}"}}\t{{}}\t{created}\t{created}'
            )

    started = time.perf_counter()
    rows = copy_rows(
        cursor, "audiences_profile", "id, workspace_id, properties, event_counts, created_at, updated_at", profiles()
    )
    timer.step("COPY profiles", started, rows)

    def identities():
        # Kind by kind in value order: each kind is one ascending run of the unique index.
        for kind, value in (("user_id", "u{:010d}"), ("device_id", "d{:010d}")):
            for k in range(n):
                yield f"{workspace_id}\t{first + k}\t{kind}\t{value.format(k)}\tbench\t{created}"
        for k in range(0, n, 4):
            yield f"{workspace_id}\t{first + k}\temail\tp{k:010d}@example.com\tbench\t{created}"

    started = time.perf_counter()
    rows = copy_rows(
        cursor, "audiences_identity", "workspace_id, profile_id, kind, value, source, created_at", identities()
    )
    timer.step("COPY identities", started, rows)
    return first


def generate_segments(cursor, workspace_id: int, plan: Plan, now: datetime) -> list[int]:
    ids = []
    for index, segment in enumerate(plan.segments):
        cursor.execute(
            """INSERT INTO audiences_segment (workspace_id, name, type, external_id, partner_name, description, size,
                   last_changed_at, created_at)
               VALUES (%s, %s, 'partner_amplitude', %s, 'Amplitude', '', %s, %s, %s) RETURNING id""",
            [
                workspace_id,
                f"Cohort {index:03d}" + (" (1M)" if index == 0 else ""),
                f"c{index}",
                plan.size(segment),
                now,
                now,
            ],
        )
        ids.append(cursor.fetchone()[0])
    return ids


def generate_members_and_ledger(
    cursor, timer: Timer, workspace_id: int, plan: Plan, segment_ids: list[int], first_profile: int, start: datetime
) -> None:
    n, days = plan.people, plan.days
    epoch = start.timestamp()

    def row_time(segment, r: int) -> float:
        return epoch + days * DAY * (r + 0.5) / segment[4]

    iso = Stamps()

    def members():
        for segment_id, segment in zip(segment_ids, plan.segments, strict=True):
            m, offset = segment[0], segment[5]
            for j in range(m):
                since = plan.member_since(segment, j)
                if since is None:
                    continue
                added = iso(row_time(segment, since))
                yield f"{segment_id}\t{first_profile + (offset + j) % n}\t{added}"

    started = time.perf_counter()
    rows = copy_rows(cursor, "audiences_segmentmember", "segment_id, profile_id, added_at", members())
    timer.step("COPY segment members", started, rows)

    def ledger():
        # Day by day, so ids follow time (as they do when the ledger is written as things happen).
        for day in range(days):
            for segment_id, segment in zip(segment_ids, plan.segments, strict=True):
                rows, offset = segment[4], segment[5]
                lo, hi = day * rows // days, (day + 1) * rows // days
                for r in range(lo, hi):
                    j, action = plan.row(segment, r)
                    yield (
                        f"{workspace_id}\t{segment_id}\t{first_profile + (offset + j) % n}\t{action}\timport\t"
                        f"import_run\t{1 + day}\t{iso(row_time(segment, r))}"
                    )

    bulk_load(
        cursor,
        timer,
        "ledger",
        "audiences_membershipchange",
        "workspace_id, segment_id, profile_id, action, source, cause_type, cause_id, occurred_at",
        ledger(),
        start,
    )


EVENT_TYPES = ["Open App", "View Item", "Add To Cart", "Purchase", "Search", "Share", "Login", "Logout"]
EVENT_COLUMNS = (
    "workspace_id, profile_id, source, uuid, event_type, event_time, user_id, device_id, amplitude_id, session_id, "
    "platform, os_name, country, event_properties, user_properties, group_properties, data, server_upload_time, "
    "loaded_at"
)


def generate_events(
    cursor, timer: Timer, workspace_id: int, plan: Plan, first_profile: int, start: datetime, count: int, half: int
) -> None:
    n, days = plan.people, plan.days
    epoch = start.timestamp()
    # The first half over every day; the second over the most recent half of the days (a business
    # that grew): the table doubles while the oldest days, the ones pruning removes, stay the same.
    first_day = 0 if half == 1 else days - days // 2
    per_day = count / (days - first_day)
    iso = Stamps()

    def events():
        for day in range(first_day, days):
            lo, hi = int((day - first_day) * per_day), int((day - first_day + 1) * per_day)
            for k in range(lo, hi):
                profile = (k * 2_654_435_761 + half * 97) % n
                ts = epoch + day * DAY + (k - lo) * DAY / max(1, hi - lo)
                when = iso(ts)
                yield (
                    f"{workspace_id}\t{first_profile + profile}\timport\t{half}-{k:012d}\t{EVENT_TYPES[k % 8]}\t{when}\t"
                    f"u{profile:010d}\td{profile:010d}\t{profile}\t{int(ts) // 1800}\tiOS\tios\tUS\t"
                    f'{{"n": {k % 100}}}\t{{}}\t{{}}\t{{}}\t{when}\t{when}'
                )

    bulk_load(cursor, timer, f"events (half {half})", "audiences_event", EVENT_COLUMNS, events(), start)


def vacuum(timer: Timer, tables: list[str]) -> None:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")
    timer.step("VACUUM ANALYZE", started)


# -- measuring ---------------------------------------------------------------------------------------


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[max(0, math.ceil(len(times) * 0.95) - 1)]


def timed(samples: int, call, warm: int = 2) -> tuple[float, float]:
    for i in range(warm):
        call(-1 - i)
    times = []
    for i in range(samples):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def measure(context: dict, samples: int) -> list[tuple[str, float, float, str]]:
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from audiences.models import Segment
    from audiences.stats import daily_history
    from integrations.connectors.list_api import ListApiConnector
    from integrations.delivery.models import SyncJob, SyncRun
    from integrations.delivery.planning import plan_run

    client = Client()
    client.force_login(context["user"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {context['api_key']}")
    big = context["segment_ids"][0]
    first, n = context["first_profile"], context["people"]
    rng = random.Random(11)
    results = []

    def page(label, url, status=200, http=client, note=""):
        def call(_i):
            response = http.get(url() if callable(url) else url)
            assert response.status_code == status, (label, response.status_code, response.content[:300])

        results.append((label, *timed(samples, call), note))
        print(f"  {label:<48}p50 {results[-1][1]:>8.1f} ms   p95 {results[-1][2]:>8.1f} ms", flush=True)

    def dashboard(_i):
        cache.clear()  # the people count is cached for a minute: measure the view that recounts
        response = client.get("/")
        assert response.status_code == 200

    results.append(("dashboard (people count recounted)", *timed(samples, dashboard), ""))
    print(f"  {results[-1][0]:<48}p50 {results[-1][1]:>8.1f} ms   p95 {results[-1][2]:>8.1f} ms", flush=True)
    page("dashboard (people count cached)", "/")
    page("segment list", "/segments/")
    page("segment list, page 5", "/segments/?page=5")
    page("1M segment page", f"/segments/{big}/")
    page("1M segment members, next page", lambda: f"/segments/{big}/?part=members&after={context['member_after']}")
    segment = Segment.objects.get(pk=big)
    results.append(("1M segment chart (30-day history)", *timed(samples, lambda _i: daily_history(segment)), ""))
    print(f"  {results[-1][0]:<48}p50 {results[-1][1]:>8.1f} ms   p95 {results[-1][2]:>8.1f} ms", flush=True)

    def random_person():
        return rng.randrange(n)

    page("people search, exact user_id", lambda: f"/people/search/?q=u{random_person():010d}", status=302)
    page("people search, email", lambda: f"/people/search/?q=p{random_person() // 4 * 4:010d}@example.com", status=302)
    page("people search, prefix", lambda: f"/people/search/?q=u{random_person() // 1000:07d}")
    page("person trace", lambda: f"/people/{first + random_person()}/")
    page("find people (ledger, newest)", "/people/")
    page("API segments list", "/api/v1/segments/", http=api)
    page("API 1M segment members (profiles)", f"/api/v1/segments/{big}/members/", http=api)
    page("API profile lookup", lambda: f"/api/v1/profiles/lookup/?identity=u{random_person():010d}", http=api)

    # Planning an incremental sync of the 1M segment: the changes of the last day.
    job = SyncJob.objects.get(pk=context["job_id"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(id), max(id), count(*) FROM audiences_membershipchange "
            "WHERE segment_id = %s AND occurred_at > now() - interval '1 day'",
            [big],
        )
        low, _high, day_rows = cursor.fetchone()
    job.cursor = (low or 1) - 1
    job.save(update_fields=["cursor"])
    planned = []

    def plan(_i):
        run = SyncRun.objects.create(workspace_id=job.workspace_id, job=job, mode="auto", status="running")
        plan_run(run, ListApiConnector)
        run.refresh_from_db()
        planned.append(run.rows_total + run.invalid)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM delivery_deliveryrow WHERE run_id = %s", [run.pk])
            cursor.execute("DELETE FROM delivery_syncrun WHERE id = %s", [run.pk])

    note = f"{day_rows:,} ledger rows -> {planned[0] if planned else 0:,} rows"
    results.append(("plan incremental sync of 1M segment (1 day)", *timed(samples, plan), note))
    results[-1] = (*results[-1][:3], f"{day_rows:,} ledger rows -> {planned[-1]:,} rows staged")
    print(f"  {results[-1][0]:<48}p50 {results[-1][1]:>8.1f} ms   p95 {results[-1][2]:>8.1f} ms  {results[-1][3]}")
    results.extend(measure_pruning(context))
    return results


def measure_pruning(context: dict) -> list[tuple[str, float, float, str]]:
    """One day's pruning (retention.prune, when this branch has it), PRUNE_DAYS times.

    The workspace keeps events for exactly the generated span, so pruning "now" removes nothing
    and pruning as of k days later removes the k-th oldest day: each call is what the daily task
    does on one day. The days pruned at full size are the ones after those pruned at half size;
    the oldest half of the days got no events from the second half, so both remove about as many
    rows while the table doubled.
    """
    try:
        from retention.prune import prune
    except ImportError:
        print("  one day's pruning: no retention.prune on this branch: not measured")
        return [("one day's pruning", float("nan"), float("nan"), "no pruning on this branch")]
    from django.utils import timezone

    from workspaces.models import Workspace

    Workspace.objects.filter(pk=context["workspace_id"]).update(retention={"events": context["days"]})
    now = context.setdefault("prune_now", timezone.now())
    if "pruned_days" not in context:
        caught_up = prune(now=now)
        print(f"  pruning as of now (nothing is past its window): {dict(caught_up.removed) or 'nothing'}")
        context["pruned_days"] = 0
    times, removed = [], []
    for _ in range(PRUNE_DAYS):
        context["pruned_days"] += 1
        started = time.perf_counter()
        report = prune(now=now + timedelta(days=context["pruned_days"]))
        times.append((time.perf_counter() - started) * 1000)
        removed.append(sum(report.removed.values()))
        print(f"    day {context['pruned_days']}: {times[-1]:.0f} ms, removed {dict(report.removed)}", flush=True)
    p50, p95 = percentiles(times)
    per_thousand = sum(times) / max(1, sum(removed)) * 1000
    note = f"{statistics.median(removed):,.0f} rows a day; {per_thousand:.1f} ms per 1,000 rows removed"
    print(f"  {'one day' + chr(39) + 's pruning':<48}p50 {p50:>8.1f} ms   p95 {p95:>8.1f} ms  {note}", flush=True)
    return [("one day's pruning", p50, p95, note)]


# -- main --------------------------------------------------------------------------------------------


def setup_workspace(plan: Plan):
    from django.contrib.auth import get_user_model

    from integrations.delivery.models import Destination, SyncJob
    from integrations.models import ApiKey
    from workspaces.models import Membership, Workspace

    workspace = Workspace.objects.create(name="Scale", slug="scale")
    user = get_user_model().objects.create_user("scale-owner", password=None)
    Membership.objects.create(user=user, workspace=workspace, role="owner")
    _key, raw = ApiKey.issue(workspace, scope="management", name="scale", access="read", created_by=user)
    destination = Destination.objects.create(
        workspace=workspace, kind="list_api", name="Scale list", config={"base_url": "http://127.0.0.1:9/"}
    )
    return workspace, user, raw, destination, SyncJob


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--segments", type=int, default=500)
    parser.add_argument("--ledger", type=int, default=50_000_000)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (and reuse it next time)")
    args = parser.parse_args()

    original, scratch = use_scratch_database(args.keep)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from workspaces.models import Workspace

    call_command("migrate", "--noinput", verbosity=0)
    plan = Plan(args.people, args.segments, args.ledger, args.months)
    now = datetime.now(UTC)
    start = now - timedelta(days=plan.days)
    timer = Timer()
    reused = Workspace.objects.filter(slug="scale").exists()
    try:
        if reused:
            print(f"reusing the data in {scratch} (--keep)")
            context = reuse_context(plan)
        else:
            print(
                f"generating in {scratch}: {plan.people:,} people, {len(plan.segments)} segments "
                f"({plan.member_count():,} members), {plan.ledger_count():,} ledger rows and "
                f"{args.events:,} events over {plan.days} days",
                flush=True,
            )
            context = generate(plan, timer, start, now, args.events // 2, half=1)
        sizes = []
        results = []
        for half in (1, 2):
            if half == 2 and not reused:
                timer_events = time.perf_counter()
                with connection.cursor() as cursor:
                    generate_events(
                        cursor,
                        timer,
                        context["workspace_id"],
                        plan,
                        context["first_profile"],
                        start,
                        args.events - args.events // 2,
                        half=2,
                    )
                vacuum(timer, ["audiences_event"])
                context["generation_s"] += time.perf_counter() - timer_events
            if half == 1 or not reused:
                print(f"generation so far: {context['generation_s']:.0f} s")
            sizes.append(table_rows())
            print(f"\nmeasuring with {sizes[-1]}", flush=True)
            results.append(measure(context, args.samples))
            if reused:
                break
        report(results, sizes, context)
    finally:
        if not args.keep:
            drop_scratch_database(original, scratch)
    return 0


def generate(plan: Plan, timer: Timer, start: datetime, now: datetime, events: int, half: int) -> dict:
    from django.db import connection

    begun = time.perf_counter()
    workspace, user, raw, destination, SyncJob = setup_workspace(plan)
    with connection.cursor() as cursor:
        first = generate_people(cursor, timer, workspace.pk, plan, start)
        segment_ids = generate_segments(cursor, workspace.pk, plan, now)
        generate_members_and_ledger(cursor, timer, workspace.pk, plan, segment_ids, first, start)
        generate_events(cursor, timer, workspace.pk, plan, first, start, events, half)
    vacuum(
        timer,
        [
            "audiences_profile",
            "audiences_identity",
            "audiences_segment",
            "audiences_segmentmember",
            "audiences_membershipchange",
            "audiences_event",
        ],
    )
    job = SyncJob.objects.create(
        workspace=workspace, segment_id=segment_ids[0], destination=destination, cadence="realtime", cursor=0
    )
    context = {
        "workspace_id": workspace.pk,
        "user": user,
        "api_key": raw,
        "segment_ids": segment_ids,
        "first_profile": first,
        "people": plan.people,
        "job_id": job.pk,
        "days": plan.days,
        "generation_s": time.perf_counter() - begun,
    }
    context["member_after"] = member_after(segment_ids[0])
    return context


def member_after(segment_id: int) -> int:
    """A keyset cursor a few pages into the big segment's member list."""
    from audiences.models import SegmentMember

    ids = SegmentMember.objects.filter(segment_id=segment_id).order_by("-id").values_list("id", flat=True)[:500]
    return list(ids)[-1]


def reuse_context(plan: Plan) -> dict:
    from django.contrib.auth import get_user_model

    from audiences.models import Profile, Segment
    from integrations.delivery.models import SyncJob
    from integrations.models import ApiKey
    from workspaces.models import Workspace

    workspace = Workspace.objects.get(slug="scale")
    user = get_user_model().objects.get(username="scale-owner")
    ApiKey.objects.filter(workspace=workspace).delete()
    _key, raw = ApiKey.issue(workspace, scope="management", name="scale", access="read", created_by=user)
    segment_ids = list(Segment.objects.filter(workspace=workspace).order_by("id").values_list("id", flat=True))
    return {
        "workspace_id": workspace.pk,
        "user": user,
        "api_key": raw,
        "segment_ids": segment_ids,
        "first_profile": Profile.objects.filter(workspace=workspace).order_by("id").values_list("id", flat=True)[0],
        "people": plan.people,
        "job_id": SyncJob.objects.get(workspace=workspace).pk,
        "days": plan.days,
        "generation_s": 0.0,
        "member_after": member_after(segment_ids[0]),
    }


def table_rows() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        # A partitioned table's rows and bytes are its partitions'; a plain table is its own.
        cursor.execute(
            """SELECT t.name, sum(greatest(c.reltuples, 0))::bigint, sum(pg_total_relation_size(c.oid))
               FROM unnest(ARRAY['audiences_profile', 'audiences_identity', 'audiences_segmentmember',
                                 'audiences_membershipchange', 'audiences_event']) AS t(name)
               JOIN pg_class c ON c.oid IN (
                   SELECT relid FROM pg_partition_tree(t.name::regclass) WHERE isleaf
                   UNION SELECT t.name::regclass)
               WHERE c.relkind = 'r'
               GROUP BY t.name ORDER BY t.name"""
        )
        rows = cursor.fetchall()
    return ", ".join(
        f"{name.removeprefix('audiences_')} {n / 1e6:.1f}M ({size / 2**30:.1f} GB)" for name, n, size in rows
    )


def report(results: list[list[tuple[str, float, float, str]]], sizes: list[str], context: dict) -> None:
    print(f"\ngeneration: {context['generation_s']:.0f} s in all")
    header = "".join(f"{'p50 / p95 ms, events ' + ('half' if i == 0 else 'full'):>34}" for i in range(len(results)))
    print(f"\n{'':<48}{header}")
    for row in range(len(results[0])):
        label = results[0][row][0]
        cells = ""
        for result in results:
            _label, p50, p95, note = result[row]
            flag = " *" if p95 > TARGET_MS and not label.startswith("one day") else "  "
            cells += f"{p50:>14.1f} / {p95:>8.1f}{flag}  {note[:0]}"
        print(f"{label:<48}{cells}")
        for result in results:
            if result[row][3]:
                print(f"{'':<52}{result[row][3]}")
    print(f"\n* above the {TARGET_MS:.0f} ms target.   tables: " + " | ".join(sizes))


if __name__ == "__main__":
    sys.exit(main())
