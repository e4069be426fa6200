"""Event imports from the sandbox Export API: windows, cursor, dedupe, faults, nothing half-applied."""

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import Event, Profile
from integrations.sources.actions import create_run
from integrations.sources.execution import execute_run
from integrations.sources.models import RunStatus

# The sandbox serves hours up to its real now - 2 h; the console's clock is passed in, two hours behind.
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture
def small_events(amp):
    amp.sandbox.project.events.events_per_hour = 20
    return amp.sandbox.project.events


def run_now(job, now=NOW):
    run = create_run(job, enqueue=False)
    execute_run(run.pk, now=now)
    run.refresh_from_db()
    job.refresh_from_db()
    return run


def test_backfill_loads_events_links_profiles_and_counts(amp, event_job, small_events):
    run = run_now(event_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    end = NOW.replace(minute=0) - timedelta(hours=1)  # lag 2 h: the last hour exported is now-2h
    assert event_job.cursor == end
    hours = 23  # backfill 1 day: from now-24h to the last exportable hour
    assert Event.objects.count() == run.counts["events_loaded"] == hours * 20
    event = Event.objects.exclude(user_id=None).first()
    assert event.profile.identities.filter(kind="amplitude_id", value=str(event.amplitude_id)).exists()
    assert event.event_time and event.uuid and event.insert_id and event.event_properties is not None
    assert "client_event_time" in event.data and "device_brand" in event.data and "event_type" not in event.data
    profile = event.profile
    assert (
        profile.event_counts[event.event_type]
        == Event.objects.filter(profile=profile, event_type=event.event_type).count()
    )
    # Later: only the new hours; replaying a window loads nothing twice.
    later = run_now(event_job, now=NOW + timedelta(hours=2))
    assert later.counts["events_loaded"] == 40 and Event.objects.count() == (hours + 2) * 20
    event_job.cursor -= timedelta(hours=3)
    event_job.save()
    replay = run_now(event_job, now=NOW + timedelta(hours=2))
    assert replay.counts["events_loaded"] == 0 and replay.counts["duplicates"] == 60
    total = sum(sum(p.event_counts.values()) for p in Profile.objects.all())
    assert total == Event.objects.exclude(profile=None).count()


def test_backfill_zero_starts_from_now(amp, event_job, small_events):
    event_job.backfill_days = 0
    event_job.save()
    run = run_now(event_job)
    assert run.status == RunStatus.SUCCEEDED and Event.objects.count() == 0 and event_job.cursor is not None


def test_a_run_that_finds_no_new_hour_ends_up_to_date_not_done(amp, event_job, small_events):
    first = run_now(event_job)
    assert first.status == RunStatus.SUCCEEDED and first.phase == "done" and first.counts["windows"] >= 1
    again = run_now(event_job)  # the same hour: nothing new to export yet
    assert again.status == RunStatus.SUCCEEDED and again.counts["windows"] == 0
    assert again.phase == "up to date"


def test_no_data_window_is_empty_not_an_error(amp, event_job, small_events):
    small_events.hours = 1  # data only in the first hour of the source, a week ago
    run = run_now(event_job)
    assert run.status == RunStatus.SUCCEEDED and run.counts["empty_windows"] >= 1


def test_malformed_lines_are_skipped_with_line_numbers(amp, event_job, small_events):
    amp.sandbox.set_faults(export_malformed_lines=3)
    run = run_now(event_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["skipped_reasons"] == {"malformed JSON": 3}
    refs = [ref for ref, _reason in run.counts["skipped_samples"]]
    assert all(ref.split(":")[0].endswith(".json.gz") and ref.split(":")[1].isdigit() for ref in refs)
    assert run.counts["events_loaded"] == 23 * 20


@pytest.mark.parametrize(
    ("fault", "needle"), [("export_truncate", "not a complete zip"), ("export_corrupt_member", "corrupt")]
)
def test_broken_zip_fails_the_window_with_nothing_applied(amp, event_job, small_events, settings, fault, needle):
    settings.SOURCES_EXPORT_WINDOW_HOURS = 6
    amp.sandbox.set_faults(**{fault: True})
    run = run_now(event_job)
    assert run.status == RunStatus.FAILED and needle in run.error
    assert Event.objects.count() == 0 and event_job.cursor is None  # the first window failed: nothing moved
    amp.sandbox.reset_faults()
    again = run_now(event_job)
    assert again.status == RunStatus.SUCCEEDED and Event.objects.count() == 23 * 20


def test_400_and_504_split_the_window(amp, event_job, small_events, settings):
    settings.SOURCES_EXPORT_WINDOW_HOURS = 8
    amp.sandbox.set_faults(export_timeout_hours=2, export_max_bytes=3 * 20 * 250)
    run = run_now(event_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["window_splits"] > 0 and Event.objects.count() == 23 * 20


def test_wrong_region_or_key_is_said_plainly(amp, event_job, amplitude_auth, small_events):
    amplitude_auth.set_secrets({"api_key": "someone-else"})
    amplitude_auth.save()
    run = run_now(event_job)
    assert run.status == RunStatus.FAILED and "other data region" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_window_shows_its_progress_before_it_commits(amp, event_job, small_events, settings, monkeypatch):
    """Each export window is one transaction; its phase and lines read reach the run through a
    connection of their own while it loads (what the console shows meanwhile)."""
    from django.db import connections

    from audiences import events

    settings.SOURCES_EXPORT_WINDOW_HOURS = 12  # 23 hours to load: windows of 12 and 11 hours
    seen = []
    load_stage = events._load_stage

    def observing(cursor, *args, **kwargs):
        console = connections.create_connection("default")
        try:
            with console.cursor() as other:
                other.execute("SELECT phase, rows_done FROM sources_importrun WHERE event_job_id = %s", [event_job.pk])
                seen.append(other.fetchone())
        finally:
            console.close()
        return load_stage(cursor, *args, **kwargs)

    monkeypatch.setattr(events, "_load_stage", observing)
    run = run_now(event_job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [rows for _phase, rows in seen] == [240, 460]
    assert all(phase.endswith("events parsed, linking people and storing") for phase, _rows in seen), seen
    assert "240 events parsed" in seen[0][0] and "220 events parsed" in seen[1][0]
    assert run.rows_done == 460 and run.phase == "done"
