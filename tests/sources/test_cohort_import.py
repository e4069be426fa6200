"""Cohort imports end to end against the sandbox Amplitude (real HTTP, real PostgreSQL)."""

import dataclasses
import time
from datetime import UTC, datetime

import pytest

from audiences.models import Identity, MembershipChange, Profile, Segment, SegmentMember
from integrations.sources import quota
from integrations.sources.actions import create_run, retry_run
from integrations.sources.execution import execute_run
from integrations.sources.models import ImportRun, RunStatus


def run_now(job, **options):
    run = create_run(job, enqueue=False)
    execute_run(run.pk, **options)
    run.refresh_from_db()
    return run


def members_of(segment):
    profile_ids = SegmentMember.objects.filter(segment=segment).values("profile_id")
    return set(Identity.objects.filter(profile_id__in=profile_ids, kind="amplitude_id").values_list("value", flat=True))


def test_import_creates_profiles_segment_and_ledger_then_diffs_drift(amp, cohort_job):
    cohort = amp.sandbox.add_cohort("c0ffee1", "Power users", size=300)
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    segment = Segment.objects.get(workspace=cohort_job.workspace, external_id="c0ffee1")
    assert segment.type == "amplitude_import" and segment.name == "Power users" and segment.size == 300
    assert run.counts["entered"] == 300 and run.counts["exited"] == 0 and run.counts["rows_read"] == 300
    assert run.counts["profiles_created"] == 300 and run.rows_done == 300
    assert MembershipChange.objects.filter(segment=segment, cause_type="import_run", cause_id=run.pk).count() == 300
    # The file's field mapping (docs/partner-apis.md section 1) lands in properties; anonymous rows get no
    # user_id identity.
    profile = Profile.objects.get(identities__kind="amplitude_id", identities__value="10000005")
    member = amp.sandbox.population.member(5)
    props = profile.properties
    assert props["amplitude_id"] == "10000005" and props["city"] == member["city"]
    assert props["state"] == props["region"] == member["region"]
    assert props["amplitude_platform"] == member["platform"] and props["amplitude_os"] == member["os"]
    assert props["amplitude_cohort_ids"] == {"c0ffee1": True}
    assert props["amplitude_cohort_names"] == {"Power users": True}
    assert props["amplitude_plan"] in ("free", "premium", "family", "student")
    anonymous = sum(1 for n in range(300) if amp.sandbox.population.user_id(n) == "")
    assert anonymous > 0
    assert Identity.objects.filter(workspace=cohort_job.workspace, kind="user_id").count() == 300 - anonymous

    # Amplitude recomputes the cohort: some left, some joined. The second run writes only the difference.
    amp.sandbox.drift_cohort("c0ffee1", steps=2)
    second = run_now(cohort_job)
    assert second.status == RunStatus.SUCCEEDED, second.error
    expected = {str(10_000_000 + n) for n in cohort.spec.member_numbers()}
    segment.refresh_from_db()
    assert members_of(segment) == expected and segment.size == len(expected)
    assert second.counts["entered"] > 0 and second.counts["exited"] > 0
    left = MembershipChange.objects.filter(segment=segment, cause_id=second.pk, action="removed").first()
    assert Profile.objects.get(pk=left.profile_id).properties["amplitude_cohort_ids"] == {"c0ffee1": False}
    # A third run with no drift changes nothing.
    third = run_now(cohort_job)
    assert third.counts["entered"] == third.counts["exited"] == 0


def test_redirect_is_followed_without_credentials_and_gzip_is_read(amp, cohort_job):
    amp.sandbox.add_cohort("big1", "Big", size=500)
    amp.sandbox.set_faults(redirect="always", gzip=True)
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert amp.sandbox.request_count("s3") == 1  # the sandbox's S3 answers 400 to a forwarded auth header
    assert Segment.objects.get(external_id="big1").size == 500


def test_expired_link_is_reminted(amp, cohort_job):
    amp.sandbox.add_cohort("exp1", "Expiring", size=50)
    amp.sandbox.set_faults(redirect="always", s3_ttl=-1.0)  # every minted link is already expired
    run = run_now(cohort_job)
    assert run.status == RunStatus.FAILED
    assert "expir" in run.error and amp.sandbox.request_count("cohort_file") == 3
    assert not Segment.objects.filter(external_id="exp1").exists()


def test_explicit_rows_duplicate_columns_and_blocked_ids(amp, cohort_job):
    amp.sandbox.add_cohort(
        "ex1",
        "Explicit",
        members=[
            {"amplitude_id": 1, "user_id": "alice", "city": "Paris", "plan": "pro"},
            {"amplitude_id": 2, "user_id": "", "city": 'Berlin, "Mitte"'},
            {"amplitude_id": 2, "user_id": "", "city": 'Berlin, "Mitte"'},  # a repeated row
            {"amplitude_id": "null", "user_id": "anonymous"},  # nothing usable
        ],
    )
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["rows_read"] == 4 and run.counts["entered"] == 2
    assert run.counts["skipped_reasons"] == {"no usable identifier (amplitude_id and user_id blank or blocked)": 1}
    berlin = Profile.objects.get(identities__kind="amplitude_id", identities__value="2")
    assert berlin.properties["city"] == 'Berlin, "Mitte"' and "amplitude_user_id" not in berlin.properties
    alice = Profile.objects.get(identities__kind="user_id", identities__value="alice")
    assert alice.properties["amplitude_plan"] == "pro"


def test_a_user_id_shared_by_two_amplitude_ids_goes_to_one_person(amp, cohort_job):
    """Two people of the file (two amplitude ids) claim one user_id: the fast plain insert of the
    user_id identities meets the repeat and is redone with ON CONFLICT, so one of them gets it and
    the import still succeeds whole."""
    amp.sandbox.add_cohort(
        "ex3",
        "Shared",
        members=[
            {"amplitude_id": 31, "user_id": "shared"},
            {"amplitude_id": 32, "user_id": "shared"},
            {"amplitude_id": 33, "user_id": "own"},
        ],
    )
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["profiles_created"] == 3 and run.counts["entered"] == 3
    holders = {Identity.objects.get(kind="amplitude_id", value=v).profile_id for v in ("31", "32")}
    assert Identity.objects.filter(kind="user_id", value="shared").count() == 1
    assert Identity.objects.get(kind="user_id", value="shared").profile_id in holders
    assert (
        Identity.objects.get(kind="user_id", value="own").profile_id
        == Identity.objects.get(kind="amplitude_id", value="33").profile_id
    )


def test_a_person_named_twice_is_one_person_with_the_last_rows_properties(amp, cohort_job, acme):
    """A repeated amplitude_id with different properties: the plain identity insert meets the
    repeat, the redo keeps the last row's person, and the first row's profile is not left behind."""
    amp.sandbox.add_cohort(
        "ex4",
        "Twice",
        members=[
            {"amplitude_id": 41, "user_id": "", "city": "Lyon", "plan": "free"},
            {"amplitude_id": 42, "user_id": "", "city": "Oslo"},
            {"amplitude_id": 41, "user_id": "", "city": "Nice"},
        ],
    )
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["profiles_created"] == 2 and run.counts["entered"] == 2
    assert Profile.objects.filter(workspace=acme).count() == 2
    twice = Profile.objects.get(identities__kind="amplitude_id", identities__value="41")
    assert twice.properties["city"] == "Nice" and "amplitude_plan" not in twice.properties
    assert members_of(Segment.objects.get(external_id="ex4")) == {"41", "42"}


def test_a_role_that_may_not_create_tables_stages_in_temporary_ones(amp, cohort_job, acme):
    """Big loads stage in an UNLOGGED table of their own, which parallel workers can read; a role
    without CREATE on the schema gets the same import (and event load) through temporary tables."""
    import io
    import os

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audiences.events import store_event_files

    amp.sandbox.add_cohort("lim0", "Usual", size=20)
    with CaptureQueriesContext(connection) as usual:
        assert run_now(cohort_job).status == RunStatus.SUCCEEDED
    assert any(q["sql"].startswith("CREATE UNLOGGED TABLE cc_cohort_raw_") for q in usual.captured_queries)

    amp.sandbox.add_cohort("lim1", "Limited", size=50)  # the next run imports both: lim0 is unchanged
    role = f"cc_no_create_{os.getpid()}"
    with connection.cursor() as cursor:  # the role and its grants go with the test's transaction
        cursor.execute(f"CREATE ROLE {role}")
        cursor.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        cursor.execute(f"SET ROLE {role}")
    try:
        with CaptureQueriesContext(connection) as queries:
            run = run_now(cohort_job)
            counts = store_event_files(acme.pk, [("a.json", io.BytesIO(b'{"event_type": "x", "user_id": "u1"}\n'))])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["entered"] == 50 and counts.loaded == 1
    created = [q["sql"] for q in queries.captured_queries if "CREATE" in q["sql"] and "raw" in q["sql"]]
    assert any(sql.startswith("CREATE TEMP TABLE cohort_raw") for sql in created), created
    assert any(sql.startswith("CREATE TEMP TABLE ev_raw") for sql in created), created


def test_existing_person_is_found_by_user_id(amp, cohort_job, acme):
    from audiences.identity import resolve

    known = resolve(acme.pk, "user_id", ["alice"]).profile_ids["alice"]
    amp.sandbox.add_cohort("ex2", "Known", members=[{"amplitude_id": 77, "user_id": "alice"}])
    run = run_now(cohort_job)
    assert run.counts["profiles_created"] == 0
    assert Identity.objects.get(kind="amplitude_id", value="77").profile_id == known


def test_failed_cohort_job_leaves_membership_as_it_was(amp, cohort_job):
    amp.sandbox.add_cohort("keep1", "Keep", size=40)
    first = run_now(cohort_job)
    assert first.status == RunStatus.SUCCEEDED
    amp.sandbox.drift_cohort("keep1", steps=3)
    amp.sandbox.set_faults(fail_jobs=1)
    failed = run_now(cohort_job)
    assert failed.status == RunStatus.FAILED and "JOB FAILED" in failed.error
    assert Segment.objects.get(external_id="keep1").size == 40
    assert not MembershipChange.objects.filter(cause_id=failed.pk).exists()
    retried = retry_run(failed, enqueue=False)
    execute_run(retried.pk)
    retried.refresh_from_db()
    assert retried.status == RunStatus.SUCCEEDED and retried.retry_of == failed and retried.trigger == "retry"
    assert retried.counts["exited"] > 0


def test_retry_only_failed_runs(amp, cohort_job):
    amp.sandbox.add_cohort("r1", "R", size=5)
    ok = run_now(cohort_job)
    with pytest.raises(Exception, match="Only failed runs"):
        retry_run(ok)


@pytest.mark.parametrize(
    ("faults", "needle"),
    [
        ({"fail_next": 10, "fail_status": 500}, "HTTP 500"),
        ({"fail_next": 10, "fail_status": 502, "fault_path": "/api/5/cohorts/request-status"}, "HTTP 502"),
        ({"fail_next": 100, "fail_status": 429}, "429"),
    ],
)
def test_server_errors_and_throttling_fail_clearly(amp, cohort_job, faults, needle):
    amp.sandbox.add_cohort("f1", "F", size=5)
    amp.sandbox.set_faults(**faults)
    run = run_now(cohort_job)
    assert run.status == RunStatus.FAILED and needle in run.error


def test_transient_errors_are_retried_inside_the_run(amp, cohort_job):
    amp.sandbox.add_cohort("t1", "T", size=5)
    amp.sandbox.set_faults(fail_next=1, fail_status=503)
    assert run_now(cohort_job).status == RunStatus.SUCCEEDED
    amp.sandbox.set_faults(fail_next=3, fail_status=429, fault_path="/api/5/cohorts/request/")
    assert run_now(cohort_job).status == RunStatus.SUCCEEDED


def test_wrong_credentials_say_so(amp, cohort_job, amplitude_auth):
    amplitude_auth.set_secrets({"secret_key": "wrong"})
    amplitude_auth.save()
    run = run_now(cohort_job)
    assert run.status == RunStatus.FAILED
    assert "API key or secret key is wrong" in run.error and "region" in run.error


def test_quota_is_counted_and_refused_when_exhausted(amp, cohort_job, settings):
    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 3
    amp.sandbox.add_cohort("q1", "Q1", size=5)
    amp.sandbox.add_cohort("q2", "Q2", size=5)
    assert run_now(cohort_job).status == RunStatus.SUCCEEDED  # 2 downloads
    assert quota.budget(cohort_job.project).remaining == 1
    with pytest.raises(quota.QuotaExceeded, match="500|3 cohort downloads a month.*1 remain.*needs 2"):
        create_run(cohort_job, enqueue=False)
    assert ImportRun.objects.filter(cohort_job=cohort_job).count() == 1
    # Even if a run slips through (two workers, one download left), the atomic counter refuses the excess.
    with pytest.raises(quota.QuotaExceeded):
        quota.consume(cohort_job.project, 2)
    assert quota.consume(cohort_job.project, 1) == 0


def test_a_run_whose_cohorts_outgrew_the_budget_fails_whole_before_downloading(amp, cohort_job, settings):
    """The job was queued on an old count (one cohort); the project now has two and one download
    remains: the run refuses before asking for any, rather than import one and fail half-applied."""
    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 1
    cohort_job.last_cohort_count = 1
    cohort_job.save()
    amp.sandbox.add_cohort("g1", "G1", size=5)
    amp.sandbox.add_cohort("g2", "G2", size=5)
    run = run_now(cohort_job)
    assert run.status == RunStatus.FAILED and "1 remain, and this run needs 2" in run.error
    assert amp.sandbox.request_count("cohort_request") == 0 and quota.budget(cohort_job.project).used == 0
    assert not Segment.objects.exists()
    cohort_job.refresh_from_db()
    assert cohort_job.last_cohort_count == 2  # the next run is checked against the real count when queued


def test_overlap_guard_records_skipped_run(amp, cohort_job):
    from django.db import connection

    first = create_run(cohort_job, enqueue=False)
    second = create_run(cohort_job, enqueue=False)  # the first is still queued
    assert second.status == RunStatus.SKIPPED and f"run {first.pk}" in second.error
    # A "running" run whose worker is alive (holds the run lock) also blocks.
    ImportRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)
    from integrations.sources.runs import _lock_key

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key(first.pk)])
    try:
        # pg_locks shows locks of every session, including ours: it counts as alive.
        third = create_run(cohort_job, enqueue=False)
        assert third.status == RunStatus.SKIPPED
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(first.pk)])
    # Its worker died (no lock): the dead run is failed and a new one is queued.
    fourth = create_run(cohort_job, enqueue=False)
    assert fourth.status == RunStatus.QUEUED
    first.refresh_from_db()
    assert first.status == RunStatus.FAILED and "stopped" in first.error


def test_ragged_file_goes_row_by_row_and_empty_values_set_nothing(cohort_job):
    """A row of the wrong width makes COPY refuse the file: the checked path skips it by line, and
    treats empty values like the fast path (no property), with the same result otherwise."""
    import io

    from integrations.sources.cohorts import load_cohort_file

    body = (
        b'"amplitude_id","user_id","city","plan"\r\n'
        b'"501","ragged-1","Oslo",""\r\n'
        b'"502","ragged-2"\r\n'  # two fields where the header has four
        b'"503","","","gold"\r\n'
    )
    run = create_run(cohort_job, enqueue=False)
    result = load_cohort_file(run, cohort_job, {"id": "rag1", "name": "Ragged"}, io.BytesIO(body))
    assert result.rows_read == 3 and result.entered == 2
    assert result.skipped_samples == [["line 3", "2 fields where the header has 4"]]
    oslo = Profile.objects.get(identities__kind="amplitude_id", identities__value="501").properties
    assert oslo["city"] == "Oslo" and oslo["amplitude_user_id"] == "ragged-1" and "amplitude_plan" not in oslo
    gold = Profile.objects.get(identities__kind="amplitude_id", identities__value="503").properties
    assert gold["amplitude_plan"] == "gold" and "city" not in gold and "amplitude_user_id" not in gold
    assert not Identity.objects.filter(value="ragged-2").exists()


def test_reimport_merges_changed_properties_and_keeps_other_cohorts(amp, cohort_job):
    amp.sandbox.add_cohort(
        "m1",
        "First",
        members=[
            {"amplitude_id": 1, "user_id": "u1", "city": "Rome"},
            {"amplitude_id": 2, "user_id": "u2", "city": "Pisa"},
        ],
    )
    amp.sandbox.add_cohort("m2", "Second", members=[{"amplitude_id": 1, "user_id": "u1"}])
    assert run_now(cohort_job).status == RunStatus.SUCCEEDED
    one = Profile.objects.get(identities__kind="amplitude_id", identities__value="1")
    assert one.properties["amplitude_cohort_ids"] == {"m1": True, "m2": True}
    assert one.properties["amplitude_cohort_names"] == {"First": True, "Second": True}
    # Person 1 moved (a changed property: the full merge); person 2 did not (only the marks change).
    amp.sandbox.set_cohort_members(
        "m1",
        [
            {"amplitude_id": 1, "user_id": "u1", "city": "Milan"},
            {"amplitude_id": 2, "user_id": "u2", "city": "Pisa"},
            {"amplitude_id": 3, "user_id": "u3", "city": "Bari"},
        ],
    )
    second = run_now(cohort_job)
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert second.counts["cohorts"]["m1"]["entered"] == 1 and second.counts["cohorts"]["m2"]["entered"] == 0
    one.refresh_from_db()
    assert one.properties["city"] == "Milan" and one.properties["amplitude_user_id"] == "u1"
    assert one.properties["amplitude_cohort_ids"] == {"m1": True, "m2": True}
    assert one.properties["amplitude_cohort_names"] == {"First": True, "Second": True}
    two = Profile.objects.get(identities__kind="amplitude_id", identities__value="2")
    assert two.properties["city"] == "Pisa" and two.properties["amplitude_cohort_ids"] == {"m1": True}
    computed = datetime.fromtimestamp(amp.sandbox.project.cohorts["m1"].last_computed, UTC).isoformat()
    assert two.properties["amplitude_last_computed"] == computed  # (person 1 was in m2 last: m2's time)
    # Nothing changed for person 2 (only in m1, same lastComputed): the third run does not rewrite them.
    third = run_now(cohort_job)
    assert third.counts["entered"] == third.counts["exited"] == 0
    assert Profile.objects.get(pk=two.pk).updated_at == two.updated_at


def test_download_breaking_off_during_the_load_applies_nothing(amp, cohort_job):
    """The file is loaded while it downloads: a download that breaks off fails the cohort, and
    nothing of what was already copied is applied."""
    from integrations.sources.amplitude import AmplitudeClient, AmplitudeError
    from integrations.sources.cohorts import import_one_cohort

    amp.sandbox.add_cohort("brk1", "Breaks", size=30)
    first = run_now(cohort_job)
    assert first.status == RunStatus.SUCCEEDED
    client = AmplitudeClient.for_project(cohort_job.project)
    header_and_rows = b'"amplitude_id","user_id"\r\n' + b"".join(b'"%d","u-%d"\r\n' % (n, n) for n in range(5000))

    class BreakingClient(type(client)):
        def request_cohort(self, *args, **kwargs):
            return "req-1"

        def wait_for_cohort(self, request_id, on_poll=None):
            return None

        def download_cohort(self, request_id, dest):
            dest.write(header_and_rows)
            time.sleep(0.3)  # COPY has started on these rows and waits for the rest
            raise AmplitudeError("The download broke off after 60000 bytes: ProtocolError", transient=True)

    breaking = BreakingClient(**{f.name: getattr(client, f.name) for f in dataclasses.fields(client)})
    run = create_run(cohort_job, enqueue=False)
    with pytest.raises(AmplitudeError, match="broke off"):
        import_one_cohort(run, cohort_job, breaking, {"id": "brk1", "name": "Breaks"})
    segment = Segment.objects.get(external_id="brk1")
    assert segment.size == 30 and not MembershipChange.objects.filter(cause_id=run.pk).exists()
    assert not Identity.objects.filter(value="u-4999").exists()


def test_a_long_cohort_name_fits_the_run_phase(amp, cohort_job):
    name = "Users who bought a premium plan in the last 30 days in Germany, Austria and Switzerland"
    amp.sandbox.add_cohort("long1", name, size=5)
    run = run_now(cohort_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert Segment.objects.get(external_id="long1").name == name


@pytest.mark.django_db(transaction=True)
def test_a_cohort_load_shows_its_progress_before_it_commits(amp, cohort_job, monkeypatch):
    """The load's transaction holds everything until it commits; its phase and rows read reach the
    run through a connection of their own, and a load that then fails takes its rows back."""
    from django.db import connections

    from audiences import cohort_load
    from integrations.sources import cohorts

    amp.sandbox.add_cohort("big1", "Big", size=300)
    amp.sandbox.add_cohort("bad1", "Breaks", size=40)
    seen = {}
    create_people = cohort_load._create_people

    def observing(cursor, params):
        # What the console sees meanwhile: another connection, outside the load's transaction.
        console = connections.create_connection("default")
        try:
            with console.cursor() as other:
                other.execute(
                    "SELECT phase, rows_done FROM sources_importrun WHERE cohort_job_id = %s", [cohort_job.pk]
                )
                phase, rows_done = other.fetchone()
        finally:
            console.close()
        seen[params["cid"]] = {"phase": phase, "rows_done": rows_done}
        if params["cid"] == "bad1":
            raise cohorts.CohortFileError("broken on purpose")
        return create_people(cursor, params)

    monkeypatch.setattr(cohort_load, "_create_people", observing)
    run = run_now(cohort_job)
    assert seen["big1"] == {"phase": "loading Big: 300 rows read, matching people", "rows_done": 300}
    assert seen["bad1"] == {"phase": "loading Breaks: 40 rows read, matching people", "rows_done": 340}
    assert run.status == RunStatus.FAILED and "broken on purpose" in run.error
    # Only the cohort that committed counts: the failed one's live rows were taken back.
    assert run.rows_done == 300 and run.counts["entered"] == 300


@pytest.mark.django_db(transaction=True)
def test_live_progress_that_would_wait_for_a_lock_is_dropped_not_the_load(amp, cohort_job, monkeypatch):
    from django.db import connections

    from audiences import cohort_load

    amp.sandbox.add_cohort("held1", "Held", size=30)
    locker = connections.create_connection("default")
    create_people, row_profiles = cohort_load._create_people, cohort_load._row_profiles

    def lock_the_run(cursor, params):  # someone holds the run's row while the next report is due
        locker.set_autocommit(False)
        with locker.cursor() as other:
            # Should the report wait for the lock anyway, the server ends this session after 5 s
            # (releasing the lock) and the rollback below fails the load: a failure, not a hang.
            other.execute("SET idle_in_transaction_session_timeout = '5s'")
            other.execute("SELECT 1 FROM sources_importrun WHERE cohort_job_id = %s FOR UPDATE", [cohort_job.pk])
        return create_people(cursor, params)

    def release_the_run(cursor):
        locker.rollback()
        return row_profiles(cursor)

    monkeypatch.setattr(cohort_load, "_create_people", lock_the_run)
    monkeypatch.setattr(cohort_load, "_row_profiles", release_the_run)
    try:
        run = run_now(cohort_job)
    finally:
        locker.close()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["entered"] == 30 and run.rows_done == 30


def test_the_next_cohorts_compute_at_amplitude_while_one_loads(amp, cohort_job):
    """Amplitude computes each cohort on its own: the run asks for the next two (the default
    SOURCES_COHORT_LOOKAHEAD) before loading the current one, and still loads them in order."""
    from integrations.sources.amplitude import AmplitudeClient
    from integrations.sources.cohorts import run_cohort_import

    amp.sandbox.set_faults(poll_inprogress=2)
    for n in range(1, 5):
        amp.sandbox.add_cohort(f"la{n}", f"Ahead {n}", size=10 * n)
    client = AmplitudeClient.for_project(cohort_job.project)
    calls, cohort_of = [], {}

    class Recording(type(client)):
        def request_cohort(self, cohort_id, **options):
            request_id = super().request_cohort(cohort_id, **options)
            cohort_of[request_id] = cohort_id
            calls.append(f"request {cohort_id}")
            return request_id

        def download_cohort(self, request_id, dest):
            calls.append(f"download {cohort_of[request_id]}")
            return super().download_cohort(request_id, dest)

    recording = Recording(**{f.name: getattr(client, f.name) for f in dataclasses.fields(client)})
    run = create_run(cohort_job, enqueue=False)
    assert run_cohort_import(run, recording) == ""
    assert calls == [
        "request la1",
        "request la2",
        "request la3",
        "download la1",
        "request la4",
        "download la2",
        "download la3",
        "download la4",
    ]
    assert run.counts["cohorts_imported"] == 4 and run.rows_done == 100
    assert [s.size for s in Segment.objects.filter(external_id__startswith="la").order_by("external_id")] == [
        10,
        20,
        30,
        40,
    ]
