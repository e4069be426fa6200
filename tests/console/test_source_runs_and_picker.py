"""Sources (issue 19.1 and 19.6): an import saved in the console starts at once when its first slot is
now, the runs table refreshes itself while a run is queued or running and pages with a total, and
the cohort picker searches, sorts and pages hundreds of cohorts as Amplitude last listed them."""

import datetime as dt

import pytest
from django.utils import timezone

from integrations.models import Authorization
from integrations.sources.cohorts import remember_listing
from integrations.sources.models import AmplitudeCohort, AmplitudeProject, CohortImportJob, EventImportJob, ImportRun

JOB = {
    "form": "cohort",
    "label": "Fans",
    "include_properties": "on",
    "prop_keys": "",
    "amplitude_id_field": "amplitude_id",
    "cohort_names_field": "amplitude_cohort_names",
    "timezone": "Europe/Berlin",
}


@pytest.fixture
def project(acme):
    auth = Authorization(workspace=acme, provider="amplitude", label="Music app")
    auth.set_secrets({"api_key": "k", "secret_key": "s"})
    auth.save()
    # Never called: nothing here reaches Amplitude (the listing is stored, runs are only queued).
    return AmplitudeProject.objects.create(workspace=acme, label="Music app", authorization=auth, base_url="")


@pytest.fixture
def listed(project):
    computed = timezone.now() - dt.timedelta(days=3)
    cohorts = [
        {
            "id": f"c{n:03d}",
            "name": f"Fans {n:03d}",
            "size": None if n % 50 == 0 else (n * 37) % 1000,
            "last_computed": computed + dt.timedelta(hours=n) if n % 7 else None,
            "archived": n == 5,
        }
        for n in range(300)
    ]
    remember_listing(project, cohorts)
    return cohorts


def test_picker_pages_searches_and_sorts_hundreds_of_cohorts(client, bob, project, listed):
    client.force_login(bob)
    page = client.get(f"/sources/{project.pk}/")
    picker = page.context["picker"]
    assert str(picker.total) == "300" and [c.name for c in picker.rows[:2]] == ["Fans 000", "Fans 001"]
    assert "Rows 1–25 of" in page.content.decode() and "archived" in page.content.decode()

    seen, url = [], f"/sources/{project.pk}/?csort=size"
    while url:
        picker = client.get(url).context["picker"]
        seen += [(c.size, c.cohort_id) for c in picker.rows]
        url = picker.next_url and f"/sources/{project.pk}/" + picker.next_url
    assert len(seen) == 300 and len({cohort_id for _, cohort_id in seen}) == 300
    known = [size for size, _ in seen if size is not None]
    assert known == sorted(known, reverse=True) and all(size is None for size, _ in seen[len(known) :])

    newest = client.get(f"/sources/{project.pk}/?csort=computed").context["picker"].rows[0]
    assert newest.cohort_id == "c299"
    found = client.get(f"/sources/{project.pk}/?cq=fans 12").context["picker"]
    assert [c.cohort_id for c in found.rows] == [f"c{n}" for n in range(120, 130)]
    assert [c.cohort_id for c in client.get(f"/sources/{project.pk}/?cq=c042").context["picker"].rows] == ["c042"]


def test_a_job_takes_cohorts_of_the_listing_only_and_lists_them_by_name(client, bob, project, listed):
    client.force_login(bob)
    refused = client.post(
        f"/sources/{project.pk}/", {**JOB, "cadence": "daily", "time_of_day": "06:00", "cohort_ids": ["nope"]}
    )
    assert refused.status_code == 400 and "load the cohorts again" in refused.content.decode()
    assert not CohortImportJob.objects.exists()
    client.post(
        f"/sources/{project.pk}/",
        {**JOB, "cadence": "daily", "time_of_day": "06:00", "cohort_ids": ["c007", "c250", "c007"]},
    )
    job = CohortImportJob.objects.get(project=project)
    # A box ticked on the page shown posts with its chip: each cohort once. Daily: it waits for 06:00.
    assert job.cohort_ids == ["c007", "c250"] and not ImportRun.objects.exists()
    page = client.get(f"/sources/{project.pk}/").content.decode()
    assert "(Fans 007, Fans 250)" in page
    assert "its first run starts " in page and " 06:00 Europe/Berlin" in page


@pytest.mark.parametrize("cadence", ["one_time", "hourly"])
def test_an_import_whose_first_slot_is_now_is_queued_as_it_is_saved(client, bob, project, listed, cadence):
    client.force_login(bob)
    response = client.post(f"/sources/{project.pk}/", {**JOB, "cadence": cadence, "cohort_ids": ["c001"]})
    job = CohortImportJob.objects.get(project=project)
    run = ImportRun.objects.get(cohort_job=job)
    assert (run.status, run.trigger) == ("queued", "manual")
    if cadence == "one_time":
        assert job.next_run_at is None  # its one run: the scheduler has nothing left to start
    else:
        assert job.next_run_at > timezone.now()  # the slot after this one
    page = client.get(response["Location"]).content.decode()
    assert f"run #{run.pk} is queued and starts within a minute" in page
    assert "Queued: starts within a minute" in page
    assert 'id="import-runs" hx-get=' in page and 'hx-trigger="every 2s"' in page  # refreshes itself


def test_a_one_time_event_import_is_queued_as_it_is_saved(client, bob, project):
    client.force_login(bob)
    client.post(f"/sources/{project.pk}/", {"form": "event", "label": "Events", "backfill_days": "1"})
    job = EventImportJob.objects.get(project=project)
    assert not job.keep_updated and job.next_run_at is None
    assert ImportRun.objects.get(event_job=job).status == "queued"


def test_runs_stop_refreshing_when_none_is_active_and_page_with_a_total(client, bob, project, acme):
    job = CohortImportJob.objects.create(workspace=acme, project=project, label="Old", cadence="hourly")
    for _ in range(30):
        ImportRun.objects.create(workspace=acme, cohort_job=job, status="succeeded", finished_at=timezone.now())
    client.force_login(bob)
    first = client.get(f"/sources/{project.pk}/")
    assert 'hx-trigger="every 2s"' not in first.content.decode()
    runs = first.context["runs"]
    assert len(runs.rows) == 25 and str(runs.total) == "30"
    rest = client.get(f"/sources/{project.pk}/" + runs.next_url).context["runs"]
    assert len(rest.rows) == 5
    assert str(client.get("/sources/").context["runs"].total) == "30"


def test_the_listing_keeps_only_what_can_be_stored(project):
    remember_listing(
        project,
        [
            {"id": "ok", "name": "Nul\x00name", "size": 12},
            {"id": "surrogate", "name": "bad \ud800 text", "size": "12"},
            {"id": "float", "name": "x", "size": float("nan")},
            {"id": "bool", "name": "x", "size": True},
            {"id": "huge", "name": "x", "size": 10**30},
            {"id": "x" * 300, "name": "too long an id"},
            {"id": None, "name": "no id"},
        ],
    )
    kept = {c.cohort_id: c for c in AmplitudeCohort.objects.filter(project=project)}
    assert set(kept) == {"ok", "surrogate", "float", "bool", "huge"}
    assert kept["ok"].name == "Nulname" and kept["ok"].size == 12
    assert "\ud800" not in kept["surrogate"].name and kept["surrogate"].size is None
    assert {kept[k].size for k in ("float", "bool", "huge")} == {None}
    remember_listing(project, [{"id": "ok", "name": "Renamed", "size": 13}])  # the next listing replaces it
    assert [(c.cohort_id, c.name, c.size) for c in AmplitudeCohort.objects.filter(project=project)] == [
        ("ok", "Renamed", 13)
    ]


def test_the_runs_refresh_is_answered_with_the_table_alone(client, bob, project, listed):
    client.force_login(bob)
    client.post(f"/sources/{project.pk}/", {**JOB, "cadence": "one_time", "cohort_ids": ["c001"]})
    headers = {"HX-Request": "true", "HX-Target": "import-runs"}
    for path in (f"/sources/{project.pk}/", "/sources/"):
        part = client.get(path, headers=headers).content.decode()
        assert part.lstrip().startswith('<div id="import-runs"') and "Queued: starts within a minute" in part
        assert "Import cohorts" not in part and "<html" not in part
