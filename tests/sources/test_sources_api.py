"""Management API: projects (test connection, quota), jobs (run now), runs (list, filter, retry)."""

from integrations.sources.models import ImportRun, RunStatus
from tests.conftest import key_client


def test_test_connection_lists_cohorts_and_budget(amp, project, acme_management_key):
    amp.sandbox.add_cohort("c1", "Power users", size=12)
    client = key_client(acme_management_key)
    response = client.post(f"/api/v1/amplitude-projects/{project.pk}/test-connection/")
    assert response.status_code == 200
    assert (
        response.json()["cohorts"][0] | {"id": "c1", "name": "Power users", "size": 12} == response.json()["cohorts"][0]
    )
    assert client.get(f"/api/v1/amplitude-projects/{project.pk}/").json()["download_budget"]["remaining"] == 500
    amp.sandbox.set_faults(fail_next=1, fail_status=403)
    bad = client.post(f"/api/v1/amplitude-projects/{project.pk}/test-connection/")
    assert bad.status_code == 502 and "region" in bad.json()["error"]["message"]


def test_job_run_now_quota_refusal_runs_and_retry(
    amp, cohort_job, acme_management_key, settings, django_capture_on_commit_callbacks
):
    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 1  # the month's row takes the limit when first counted
    amp.sandbox.add_cohort("c1", "Power users", size=12)
    client = key_client(acme_management_key)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(f"/api/v1/cohort-import-jobs/{cohort_job.pk}/run-now/")
    assert created.status_code == 201
    run = ImportRun.objects.get(pk=created.json()["id"])
    assert run.status == RunStatus.SUCCEEDED
    listed = client.get("/api/v1/import-runs/?status=succeeded&kind=cohort").json()["results"]
    assert [r["id"] for r in listed] == [run.pk] and listed[0]["counts"]["entered"] == 12
    assert client.post(f"/api/v1/import-runs/{run.pk}/retry/").status_code == 409  # only failed runs
    refused = client.post(f"/api/v1/cohort-import-jobs/{cohort_job.pk}/run-now/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "quota_exceeded"
    assert "0 remain" in refused.json()["error"]["message"]


def test_an_every_cohort_job_is_refused_on_its_first_run_when_the_quota_cannot_cover_it(
    amp, cohort_job, acme_management_key, settings
):
    """Before its first run an "every cohort" job has never seen how many cohorts there are: it lists
    them first (no download) and is refused with 409, instead of importing one and failing half-applied."""
    from audiences.models import Segment
    from integrations.sources import quota

    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 1
    amp.sandbox.add_cohort("c1", "Power users", size=5)
    amp.sandbox.add_cohort("c2", "Churn risk", size=5)
    assert cohort_job.cohort_ids == [] and cohort_job.last_cohort_count == 0
    refused = key_client(acme_management_key).post(f"/api/v1/cohort-import-jobs/{cohort_job.pk}/run-now/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "quota_exceeded"
    assert "1 remain, and this run needs 2" in refused.json()["error"]["message"]
    assert not ImportRun.objects.filter(cohort_job=cohort_job).exists()
    assert amp.sandbox.request_count("cohort_request") == 0 and quota.budget(cohort_job.project).used == 0
    assert not Segment.objects.exists()


def test_a_one_time_job_created_and_run_now_runs_once(
    amp, project, acme_management_key, django_capture_on_commit_callbacks
):
    """Creating a one-time job schedules it for now; "Run now" right after is that one run, so the
    scheduler's next tick starts nothing, and a second "Run now" is skipped: one download, not two."""
    from datetime import timedelta

    from django.utils import timezone

    from integrations.sources import quota
    from integrations.sources.scheduling import dispatch_due

    amp.sandbox.add_cohort("c1", "Power users", size=12)
    client = key_client(acme_management_key)
    job = client.post(
        "/api/v1/cohort-import-jobs/",
        {"project": project.pk, "label": "Once", "cadence": "one_time", "cohort_ids": ["c1"]},
        format="json",
    ).json()
    assert job["next_run_at"]  # scheduled for now
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(f"/api/v1/cohort-import-jobs/{job['id']}/run-now/")
    assert first.status_code == 201 and ImportRun.objects.get(pk=first.json()["id"]).status == RunStatus.SUCCEEDED
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_due(timezone.now() + timedelta(minutes=1)) == 0  # the next tick
    again = client.post(f"/api/v1/cohort-import-jobs/{job['id']}/run-now/").json()
    assert again["status"] == "skipped" and f"already ran (run {first.json()['id']})" in again["error"]
    runs = ImportRun.objects.filter(cohort_job_id=job["id"]).exclude(status=RunStatus.SKIPPED)
    assert [run.pk for run in runs] == [first.json()["id"]]
    assert amp.sandbox.request_count("cohort_request") == 1 and quota.budget(project).used == 1


def test_outsiders_see_nothing(project, cohort_job, globex_management_key):
    client = key_client(globex_management_key)
    assert client.get(f"/api/v1/amplitude-projects/{project.pk}/").status_code == 404
    assert client.post(f"/api/v1/cohort-import-jobs/{cohort_job.pk}/run-now/").status_code == 404


def test_create_daily_job_needs_time_of_day(project, acme_management_key):
    client = key_client(acme_management_key)
    response = client.post(
        "/api/v1/cohort-import-jobs/", {"project": project.pk, "label": "d", "cadence": "daily"}, format="json"
    )
    assert response.status_code == 400 and "time_of_day" in response.json()["error"]["fields"]
    ok = client.post(
        "/api/v1/cohort-import-jobs/",
        {"project": project.pk, "label": "d", "cadence": "daily", "time_of_day": "06:00", "timezone": "Europe/Berlin"},
        format="json",
    )
    assert ok.status_code == 201 and ok.json()["next_run_at"]
