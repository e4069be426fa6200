"""`manage.py seed_demo` against every sandbox, as `python3 dev.py run` starts them: the demo shows
each capability (imports, syncs, CleverTap, Kahuna export, Kochava stream and links, pushes) and a
second start changes nothing it should keep."""

import io
import json
import stat

import pytest
from django.core.management import call_command

from audiences.models import Erasure, Event, ProfileMerge, Segment, SegmentType
from campaigns.models import Campaign, Enrollment
from demo.servers import running_demo_servers
from integrations.connectors.kahuna.models import KahunaExport
from integrations.connectors.kochava.models import KochavaStream, KochavaUserLink
from integrations.delivery.models import Destination, RunStatus, SyncJob
from integrations.inbound.models import BatchStatus, InboundBatch
from integrations.models import ApiKey
from integrations.sources.models import ImportRun
from workspaces.models import Workspace


@pytest.fixture
def demo_sandboxes(monkeypatch, settings, tmp_path):
    settings.BASE_DIR = tmp_path  # the login state file goes to <BASE_DIR>/.data/
    settings.SOURCES_POLL_INTERVAL = 0.0
    # More members per cohort than the demo pushes, so the biggest segment is an imported one, as
    # in the real demo (2,000 members).
    with running_demo_servers(members=300, cohorts=3, events_per_hour=20) as urls:
        for name, url in urls.items():
            monkeypatch.setenv(name, url)
        yield urls


def seed(django_capture_on_commit_callbacks) -> str:
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):  # queued sync runs run, as the worker would
        call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.slow
def test_the_demo_shows_every_capability_and_a_second_start_keeps_it(
    db, demo_sandboxes, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    first = seed(django_capture_on_commit_callbacks)

    workspace = Workspace.objects.get(slug="demo")
    state_file = settings.BASE_DIR / ".data" / "demo-login.json"
    state = json.loads(state_file.read_text())
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert f"Login: admin / {state['password']}" in first and f"Demo inbound API key: {state['inbound_key']}" in first
    assert sorted(workspace.memberships.values_list("user__username", "role")) == [
        ("admin", "owner"),
        ("marketer", "marketer"),
        ("ops", "ops"),
        ("viewer", "viewer"),
    ]
    # Sources: the cohorts and a day of events imported from the sandbox Amplitude.
    # One run lost its worker (no heartbeat): found by the lost-run check, failed "lost", retried.
    lost = ImportRun.objects.get(phase="lost")
    assert lost.status == "failed" and "worker" in lost.error
    assert ImportRun.objects.get(retry_of=lost).status == "succeeded"
    assert set(ImportRun.objects.exclude(pk=lost.pk).values_list("status", flat=True)) == {"succeeded"}
    imported = Segment.objects.filter(workspace=workspace, type=SegmentType.AMPLITUDE_IMPORT)
    assert imported.count() == 3 and all(segment.size > 0 for segment in imported)
    assert Event.objects.filter(workspace=workspace).exists()
    # Delivery: the list partner and every partner destination, the syncs delivered.
    destinations = Destination.objects.filter(workspace=workspace)
    assert sorted(destinations.values_list("kind", flat=True)) == ["clevertap", "kahuna", "kochava", "list_api"]
    # (The pushed "Power users" list syncs to CleverTap for the live campaign: checked below.)
    jobs = SyncJob.objects.filter(workspace=workspace).exclude(segment__external_id="26umsb5")
    assert sorted(jobs.values_list("destination__kind", flat=True)) == ["clevertap", "list_api"]
    for job in jobs:
        run = job.runs.get()
        assert run.status == RunStatus.SUCCEEDED and run.delivered > 0, run.error
        assert run.delivered + run.invalid == job.segment.size  # invalid: members with no usable id
        assert job.cadence == "hourly" and job.next_run_at is not None
    # Kahuna: the campaign list and one export; Kochava: a stream pass and linked people.
    export = KahunaExport.objects.get()
    assert export.status == "succeeded" and export.users_sent > 0
    assert export.users_sent + export.invalid == export.users_total
    stream = KochavaStream.objects.get()
    assert stream.events_sent > 0
    assert KochavaUserLink.objects.filter(status="linked").exists()
    assert KochavaUserLink.objects.filter(status="pending").exists()  # devices with no install yet
    # Inbound: pushes as Amplitude and a Segment SDK send them, applied, with a merge.
    assert InboundBatch.objects.filter(workspace=workspace).count() >= 5
    assert set(InboundBatch.objects.values_list("status", flat=True)) == {BatchStatus.APPLIED}
    assert Segment.objects.filter(workspace=workspace, type=SegmentType.PARTNER_AMPLITUDE).count() == 3
    assert ProfileMerge.objects.filter(kept_profile__workspace=workspace).exists()
    # Campaigns: a past-behaviour one sent (CleverTap created it), a live one with people enrolled
    # and sent from a push; Kahuna's adaptive campaign (above) shows on the same page.
    past = Campaign.objects.get(workspace=workspace, kind="past", name="Weekend offer (demo)")
    assert past.status == "finished" and past.reach and past.launches.get().state == "accepted"
    draft = Campaign.objects.get(workspace=workspace, status="draft")  # to edit and launch in the console
    assert draft.repeat == "weekly" and draft.reach and draft.send_at.astimezone(workspace.tz).hour == 9
    live = Campaign.objects.get(workspace=workspace, kind="live")
    assert live.status == "running"
    enrolled = live.enrollments.all()
    assert enrolled.count() == 20 and {e.status for e in enrolled} == {"sent"}
    assert {e.to_value for e in enrolled} == {f"demo-user-{n:04d}" for n in range(250, 270)}
    # Erasure: one person erased, so the Erasures page has something to show.
    assert Erasure.objects.filter(workspace=workspace, requested_by_label="demo").count() == 1

    counts = (
        Destination.objects.count(),
        SyncJob.objects.count(),
        KahunaExport.objects.count(),
        ApiKey.objects.count(),
        Enrollment.objects.count(),
        ImportRun.objects.count(),
    )
    second = seed(django_capture_on_commit_callbacks)
    assert f"Login: admin / {state['password']}" in second  # the same login
    assert json.loads(state_file.read_text())["inbound_key"] == state["inbound_key"]
    assert (
        Destination.objects.count(),
        SyncJob.objects.count(),
        KahunaExport.objects.count(),
        ApiKey.objects.count(),
        Enrollment.objects.count(),
        ImportRun.objects.count(),
    ) == counts
    assert all(job.runs.filter(status=RunStatus.SUCCEEDED).count() == 2 for job in jobs)  # resent after restart
    assert Erasure.objects.filter(workspace=workspace).count() == 1
