"""See it arrive (issue 19.1): the wizard's one-time sync starts at once and only once, the sync page
says in words what a run is doing and did, where the data landed and how to use it there, and the
partner-call log never shows a refusal inside a 200 as a success."""

import datetime as dt

import pytest
from django.utils import timezone

from integrations.delivery.engine import execute_run
from integrations.delivery.models import PartnerCall, SyncJob, SyncRun
from integrations.delivery.scheduling import dispatch_due
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync


@pytest.fixture
def list_setup(acme, partners):  # noqa: F811
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 6)))
    dest = destination(
        acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "test-api-key"}, name="Partner list"
    )
    return partner, segment, dest


def wizard(client, segment, dest, cadence, **extra):
    return client.post(
        "/syncs/new/",
        {
            "segment": segment.pk,
            "destination": dest.pk,
            "cadence": cadence,
            "timezone": "Europe/Berlin",
            "user_id_kind": "user_id",
            "device_id_kind": "",
            **extra,
        },
    )


def test_a_one_time_sync_saved_in_the_wizard_starts_at_once_and_the_scheduler_never_runs_it_again(
    client, bob, list_setup, django_capture_on_commit_callbacks
):
    partner, segment, dest = list_setup
    client.force_login(bob)
    step = client.get(f"/syncs/new/?segment={segment.pk}&destination={dest.pk}").content.decode()
    assert ">Save and sync now</button>" in step
    with django_capture_on_commit_callbacks(execute=True):
        response = wizard(client, segment, dest, "one_time")
    job = SyncJob.objects.get(segment=segment)
    run = SyncRun.objects.get(job=job)
    assert (run.status, run.delivered, run.trigger) == ("succeeded", 5, "manual"), run.error
    assert job.next_run_at is None  # its one run: nothing left for the scheduler
    assert len(partner.fake.members(job.partner_state["list_id"])) == 5
    page = client.get(response["Location"]).content.decode()
    assert f"run #{run.pk} is queued and starts within a minute" in page

    assert dispatch_due(timezone.now() + dt.timedelta(hours=2)) == []  # the scheduler starts nothing
    assert SyncRun.objects.filter(job=job).count() == 1


def test_a_daily_sync_waits_for_its_first_slot_and_says_when_in_its_zone(client, bob, list_setup):
    _, segment, dest = list_setup
    client.force_login(bob)
    response = wizard(client, segment, dest, "daily", time_of_day="06:00")
    job = SyncJob.objects.get(segment=segment)
    assert not SyncRun.objects.filter(job=job).exists()
    page = client.get(response["Location"]).content.decode()
    assert "its first run starts at " in page and " 06:00 Europe/Berlin" in page


def test_the_live_part_says_queued_done_and_nothing_changed_in_words(client, bob, list_setup):
    from integrations.delivery.actions import start_run

    _, segment, dest = list_setup
    job = job_for(segment, dest, cadence="hourly")
    client.force_login(bob)
    before = client.get(f"/syncs/{job.pk}/").content.decode()
    assert "Every row was delivered" not in before and "No run has finished yet" in before
    assert 'id="arrival"' not in before

    run = start_run(job, trigger="test")
    queued = client.get(f"/syncs/{job.pk}/progress/").content.decode()
    assert "Queued: it starts within a minute" in queued and 'hx-trigger="every 2s"' in queued
    execute_run(run.pk)
    done = client.get(f"/syncs/{job.pk}/").content.decode()
    assert "Done: 5 delivered" in done and "Every row was delivered" in done and 'id="arrival"' in done

    again = sync(job)
    assert again.status == "succeeded" and again.rows_total == 0
    quiet = client.get(f"/syncs/{job.pk}/progress/").content.decode()
    assert "Nothing changed; Partner list is up to date." in quiet and "Done:" not in quiet


def test_the_live_part_asks_the_page_to_reload_its_tables_when_the_run_changes(client, bob, list_setup):
    _, segment, dest = list_setup
    job = job_for(segment, dest)
    client.force_login(bob)
    assert "HX-Trigger" not in client.get(f"/syncs/{job.pk}/progress/?seen=none")
    run = sync(job)
    changed = client.get(f"/syncs/{job.pk}/progress/?seen=none")
    assert changed["HX-Trigger"] == "sync-run-changed"
    same = client.get(f"/syncs/{job.pk}/progress/?seen={run.pk}:{run.status}")
    assert "HX-Trigger" not in same


def test_run_history_pages_with_a_total(client, bob, list_setup):
    _, segment, dest = list_setup
    job = job_for(segment, dest, cadence="hourly")
    for _ in range(35):
        SyncRun.objects.create(workspace=job.workspace, job=job, status="skipped", finished_at=timezone.now())
    client.force_login(bob)
    first = client.get(f"/syncs/{job.pk}/")
    runs = first.context["runs"]
    assert len(runs.rows) == 30 and str(runs.total) == "35"
    second = client.get(f"/syncs/{job.pk}/" + runs.next_url)
    assert len(second.context["runs"].rows) == 5
    assert "Rows 31–35 of" in second.content.decode()


@pytest.fixture
def clevertap_setup(acme, partners):  # noqa: F811
    partner = partners("clevertap", account_id="ACC-7", passcode="pass-7", reject_ids=["u3"])
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 6)))
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url, "region": "us1"},
        secrets={"passcode": "pass-7"},
        fields={"account_id": "ACC-7"},
        name="CleverTap US",
    )
    return partner, segment, dest


def test_after_a_clevertap_run_the_page_says_where_it_landed_and_how_to_use_it(client, bob, clevertap_setup):
    _, segment, dest = clevertap_setup
    job = job_for(segment, dest)
    run = sync(job)
    assert run.delivered == 4 and run.rejected == 1, run.error
    client.force_login(bob)
    page = client.get(f"/syncs/{job.pk}/").content.decode()
    flag = f"[Amplitude] {segment.name}: {segment.external_id}"
    assert "Where it landed in CleverTap US" in page
    assert f"<code>{flag}</code>" in page  # the profile property to build the segment on
    assert "<code>Partner Sync</code>" in page and "Partner Segment Name" in page and "Action" in page
    assert f"Partner Segment Name is “{segment.name}” and Action is Added" in page
    assert 'href="https://us1.dashboard.clevertap.com/"' in page  # the destination's region


def test_a_refusal_inside_a_200_is_not_shown_as_a_success_and_calls_filter_by_outcome(client, bob, clevertap_setup):
    _, segment, dest = clevertap_setup
    sync(job_for(segment, dest))
    upload = PartnerCall.objects.get(destination=dest, url__endswith="/1/upload")
    assert upload.status_code == 200 and upload.outcome == "refused"
    assert "1 of 5 rows refused in a 200 answer" in upload.error
    client.force_login(bob)
    page = client.get(f"/destinations/{dest.pk}/").content.decode()
    assert 'data-outcome="refused"' in page and "200 with errors" in page
    assert "1 answered with an error" in page
    refused = client.get(f"/destinations/{dest.pk}/?outcome=refused")
    assert [c.pk for c in refused.context["calls"].rows] == [upload.pk]
    ok = client.get(f"/destinations/{dest.pk}/?outcome=ok")
    assert upload.pk not in [c.pk for c in ok.context["calls"].rows]
    assert all(c.outcome == "ok" for c in ok.context["calls"].rows)


def test_partner_calls_page_with_a_total(client, bob, list_setup):
    _, _, dest = list_setup
    PartnerCall.objects.bulk_create(
        PartnerCall(destination=dest, method="POST", url="https://x/", request_summary="add", status_code=200)
        for _ in range(60)
    )
    client.force_login(bob)
    first = client.get(f"/destinations/{dest.pk}/")
    calls = first.context["calls"]
    assert len(calls.rows) == 50 and str(calls.total) == "60"
    rest = client.get(f"/destinations/{dest.pk}/" + calls.next_url)
    assert len(rest.context["calls"].rows) == 10 and "open" in rest.content.decode().split('id="calls-card"')[1][:20]


def test_segment_pages_say_where_it_is_synced_and_when_it_was_last_delivered(client, bob, list_setup):
    _, segment, dest = list_setup
    job = job_for(segment, dest, cadence="hourly")
    client.force_login(bob)
    before = client.get(f"/segments/{segment.pk}/").content.decode()
    assert f'<a href="/syncs/{job.pk}/">Partner list</a>' in before and "nothing delivered yet" in before
    run = sync(job)
    sync(job)  # nothing changed: the last delivery stays the first run's
    page = client.get(f"/segments/{segment.pk}/")
    [synced] = page.context["synced_to"]
    assert synced.last_delivery == run.finished_at
    html = page.content.decode()
    assert "last delivery <time" in html and ">just now</time>" in html  # the full moment is its tooltip
    listing = client.get("/segments/").content.decode()
    assert f'<a href="/syncs/{job.pk}/">Partner list</a>' in listing and "delivered " in listing
