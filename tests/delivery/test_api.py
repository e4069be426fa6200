"""The management API for destinations, syncs and runs, through the personas."""

from django.core import mail

from integrations.delivery.models import Destination, SyncJob
from integrations.models import Authorization
from tests.conftest import key_client
from tests.delivery.helpers import add_members, destination, make_profiles, make_segment


def test_an_owner_sets_up_a_list_destination_and_a_sync_and_runs_it(
    acme, alice, api, partners, django_capture_on_commit_callbacks
):
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(5)))
    auth = Authorization(workspace=acme, provider="list_api", label="partner key")
    auth.set_secrets({"api_key": "test-api-key"})
    auth.save()
    api.force_login(alice)
    created = api.post(
        "/api/v1/destinations/",
        {
            "kind": "list_api",
            "name": "Partner list",
            "config": {"base_url": partner.base_url},
            "authorization": auth.pk,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["config"]["batch_size"] == 10_000 and created.json()["health"] == "healthy"
    dest_id = created.json()["id"]
    assert api.post(f"/api/v1/destinations/{dest_id}/test-connection/").json()["ok"] is True
    job = api.post(
        "/api/v1/sync-jobs/", {"segment": segment.pk, "destination": dest_id, "cadence": "one_time"}, format="json"
    )
    assert job.status_code == 201, job.json()
    job_id = job.json()["id"]
    preview = api.post(f"/api/v1/sync-jobs/{job_id}/dry-run/").json()
    assert preview["to_add"] == 5 and preview["sample_requests"]["add"]["body"]["userIds"] == ["u0", "u1", "u2"]
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(f"/api/v1/sync-jobs/{job_id}/sync-now/")
    assert started.status_code == 202
    runs = api.get(f"/api/v1/sync-runs/?job={job_id}").json()["results"]
    assert runs[0]["status"] == "succeeded" and runs[0]["delivered"] == 5
    rows = api.get(f"/api/v1/sync-runs/{runs[0]['id']}/rows/?status=delivered").json()["results"]
    assert {r["user_id"] for r in rows} == {f"u{i}" for i in range(5)}
    calls = api.get(f"/api/v1/destinations/{dest_id}/calls/").json()
    assert calls and all("test-api-key" not in str(c) for c in calls)
    assert not mail.outbox  # healthy all along: no notice


def test_a_one_time_sync_created_and_synced_now_runs_once(
    acme, alice, api, partners, django_capture_on_commit_callbacks
):
    """Creating a one-time sync schedules it for now; "Sync now" right after is its one run, so the
    scheduler's next tick starts nothing and a second "Sync now" is refused with the reason."""
    import datetime as dt

    from django.utils import timezone

    from integrations.delivery.models import SyncRun
    from integrations.delivery.scheduling import dispatch_due

    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(3)))
    dest = destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"})
    api.force_login(alice)
    job_id = api.post(
        "/api/v1/sync-jobs/", {"segment": segment.pk, "destination": dest.pk, "cadence": "one_time"}, format="json"
    ).json()["id"]
    assert SyncJob.objects.get(pk=job_id).next_run_at is not None  # scheduled for now
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"/api/v1/sync-jobs/{job_id}/sync-now/")
    assert first.status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_due(timezone.now() + dt.timedelta(minutes=1)) == []  # the next tick
    again = api.post(f"/api/v1/sync-jobs/{job_id}/sync-now/")
    assert again.status_code == 409 and "already ran" in again.json()["error"]
    sent = SyncRun.objects.filter(job_id=job_id).exclude(status="skipped")
    assert [(run.pk, run.status, run.delivered) for run in sent] == [(first.json()["id"], "succeeded", 3)]


def test_bad_config_is_a_400_naming_the_field(acme, alice, api):
    api.force_login(alice)
    response = api.post(
        "/api/v1/destinations/", {"kind": "list_api", "name": "x", "config": {"base_url": "nope"}}, format="json"
    )
    assert response.status_code == 400
    assert "base_url" in str(response.json()["error"])


def test_a_marketer_cannot_create_destinations_but_can_run_syncs_and_outsiders_see_nothing(
    acme, bob, charlie, api, globex_management_key
):
    segment = make_segment(acme)
    dest = Destination.objects.create(workspace=acme, kind="list_api", name="d", config={"base_url": "http://x"})
    job = SyncJob.objects.create(workspace=acme, segment=segment, destination=dest, cadence="one_time")
    api.force_login(bob)
    assert (
        api.post("/api/v1/destinations/", {"kind": "list_api", "name": "y", "config": {}}, format="json").status_code
        == 403
    )
    assert api.post(f"/api/v1/sync-jobs/{job.pk}/pause/").json()["paused"] is True
    outsider = key_client(globex_management_key)
    assert outsider.get(f"/api/v1/sync-jobs/{job.pk}/").status_code == 404
    assert outsider.get("/api/v1/destinations/").json()["results"] == []
