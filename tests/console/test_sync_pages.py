"""Sync pages: the wizard, Sync now against the sandbox list API, dry run, failures, roles."""

import pytest

from integrations.delivery.models import DeliveryRow, SyncJob, SyncRun
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment


@pytest.fixture
def setup(acme, partners):  # noqa: F811
    partner = partners("list_api", reject_ids={"u3"}, reject_mode="row")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 11), nobody={10}))
    dest = destination(
        acme,
        "list_api",
        {"base_url": partner.base_url, "batch_size": 4},
        secrets={"api_key": "test-api-key"},
        name="Partner list",
    )
    return partner, segment, dest


def test_wizard_creates_a_sync(client, bob, setup):
    _, segment, dest = setup
    client.force_login(bob)
    step3 = client.get(f"/syncs/new/?segment={segment.pk}&destination={dest.pk}").content.decode()
    assert f"[Amplitude] {segment.name}: {segment.external_id}" in step3
    assert "skipped and listed as <em>invalid</em>" in step3
    bad = client.post(
        "/syncs/new/",
        {
            "segment": segment.pk,
            "destination": dest.pk,
            "cadence": "daily",
            "timezone": "Europe/Paris",
            "user_id_kind": "user_id",
            "device_id_kind": "",
        },
    )
    assert bad.status_code == 400 and 'id="time_of_day-error"' in bad.content.decode()
    response = client.post(
        "/syncs/new/",
        {
            "segment": segment.pk,
            "destination": dest.pk,
            "cadence": "daily",
            "time_of_day": "06:30",
            "timezone": "Europe/Paris",
            "user_id_kind": "user_id",
            "device_id_kind": "device_id",
        },
    )
    job = SyncJob.objects.get(segment=segment)
    assert response["Location"] == f"/syncs/{job.pk}/"
    assert job.destination == dest and job.timezone == "Europe/Paris" and job.next_run_at is not None


def test_sync_now_delivers_dry_run_sends_nothing_and_failures_are_searchable(
    client, bob, setup, django_capture_on_commit_callbacks
):
    partner, segment, dest = setup
    job = job_for(segment, dest)
    client.force_login(bob)
    dry = client.post(f"/syncs/{job.pk}/dry-run/").content.decode()
    assert 'id="dry-add">9<' in dry and 'id="dry-invalid">1<' in dry and "userIds" in dry
    assert partner.fake.find(method="POST") == [] and not SyncRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/syncs/{job.pk}/sync-now/")
    run = SyncRun.objects.get(job=job)
    assert run.status == "partially_failed", run.error
    assert run.delivered == 8 and run.invalid == 1 and run.rejected == 1
    list_id = SyncJob.objects.get(pk=job.pk).partner_state["list_id"]
    assert partner.fake.members(list_id) == {f"u{i}" for i in range(1, 10)} - {"u3"}

    page = client.get(f"/syncs/{job.pk}/").content.decode()
    assert 'data-status="partially_failed"' in page and 'hx-trigger="every' not in page  # finished: no polling
    assert "invalid user id" in page
    rejected = DeliveryRow.objects.get(job_id=job.pk, status="rejected")
    found = client.get(f"/syncs/{job.pk}/?q=u3").content.decode()
    assert f"/people/{rejected.profile_id}/" in found and "invalid user id" in found
    assert "invalid user id" not in client.get(f"/syncs/{job.pk}/?q=u4").content.decode()
    progress = client.get(f"/syncs/{job.pk}/progress/").content.decode()
    assert f"of {run.rows_total} rows" in progress and 'hx-trigger="every' not in progress


def test_pause_resume_and_reset_diff(client, bob, setup):
    _, segment, dest = setup
    job = job_for(segment, dest, cadence="hourly")
    client.force_login(bob)
    client.post(f"/syncs/{job.pk}/pause/")
    assert SyncJob.objects.get(pk=job.pk).paused
    client.post(f"/syncs/{job.pk}/resume/")
    assert not SyncJob.objects.get(pk=job.pk).paused
    client.post(f"/syncs/{job.pk}/reset-diff/")
    assert SyncJob.objects.get(pk=job.pk).cursor is not None


def test_viewer_reads_but_cannot_act_and_outsider_gets_404(client, vera, charlie, setup):
    _, segment, dest = setup
    job = job_for(segment, dest)
    client.force_login(vera)
    assert client.get(f"/syncs/{job.pk}/").status_code == 200
    assert "/sync-now/" not in client.get(f"/syncs/{job.pk}/").content.decode()
    assert client.post(f"/syncs/{job.pk}/sync-now/").status_code == 403
    assert (
        client.post("/syncs/new/", {"segment": segment.pk, "destination": dest.pk, "cadence": "one_time"}).status_code
        == 403
    )
    assert not SyncRun.objects.exists()
    client.force_login(charlie)
    assert client.get(f"/syncs/{job.pk}/").status_code == 404
    assert client.post(f"/syncs/{job.pk}/sync-now/").status_code == 404


def test_progress_polls_while_a_run_is_active(client, vera, setup):
    from integrations.delivery.actions import start_run

    _, segment, dest = setup
    job = job_for(segment, dest)
    run = start_run(job, trigger="test")  # queued, never executed: the block must keep polling
    client.force_login(vera)
    progress = client.get(f"/syncs/{job.pk}/progress/").content.decode()
    assert 'hx-trigger="every 2s"' in progress and f"Run #{run.pk}" in progress


def test_wizard_maps_the_partner_user_id_from_a_profile_property(client, bob, setup):
    from audiences.models import Profile
    from integrations.delivery.engine import execute_run

    partner, segment, dest = setup
    member = segment.members.order_by("profile_id").first().profile_id
    Profile.objects.filter(pk=member).update(properties={"email": "ada@example.com"})
    client.force_login(bob)
    response = client.post(
        "/syncs/new/",
        {
            "segment": segment.pk,
            "destination": dest.pk,
            "cadence": "one_time",
            "timezone": "UTC",
            "user_id_kind": "user_id",
            "user_id_property": " email ",
            "device_id_kind": "",
        },
    )
    job = SyncJob.objects.get(segment=segment)
    assert response.status_code == 302 and job.user_id_kind == "property:email"
    run = SyncRun.objects.get(job=job)  # "Save and sync now": queued by the wizard itself
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.delivered == 1 and run.invalid == 9  # only the member with an email property can be sent
    job.refresh_from_db()
    assert partner.fake.members(job.partner_state["list_id"]) == {"ada@example.com"}
