"""Connecting Amplitude and importing cohorts from the console, against the real sandbox Amplitude."""

import pytest

from audiences.models import Segment
from integrations.sandbox.amplitude import AmplitudeSandbox, running_amplitude_sandbox
from integrations.sources.models import AmplitudeProject, CohortImportJob, ImportRun


@pytest.fixture
def amp(settings):
    settings.SOURCES_POLL_INTERVAL = 0.0
    settings.SOURCES_RETRY_BACKOFF = 0.0
    sandbox = AmplitudeSandbox(seed=3)
    sandbox.add_cohort("c-small", name="Small fans", size=40)
    with running_amplitude_sandbox(sandbox) as running:
        yield running


def connect(client, amp, label="Music app"):
    return client.post(
        "/sources/",
        {
            "label": label,
            "description": "",
            "api_key": amp.auth[0],
            "secret_key": amp.auth[1],
            "region": "us",
            "base_url": amp.base_url,
        },
    )


def test_owner_connects_tests_and_imports_a_cohort(client, alice, acme, amp, django_capture_on_commit_callbacks):
    client.force_login(alice)
    response = connect(client, amp)
    project = AmplitudeProject.objects.get(workspace=acme)
    assert response["Location"] == f"/sources/{project.pk}/"
    assert amp.auth[1] not in client.get(f"/sources/{project.pk}/").content.decode()

    tested = client.post(f"/sources/{project.pk}/test/").content.decode()
    assert "Connected: 1 cohort" in tested and "Small fans" in tested

    picker = client.post(f"/sources/{project.pk}/", {"form": "cohorts"}, follow=True).content.decode()
    assert "Amplitude lists 1 cohort in this project" in picker
    assert 'data-name="Small fans"' in picker and "40 users" in picker

    with django_capture_on_commit_callbacks(execute=True):  # a one-time import starts as it is saved
        saved = client.post(
            f"/sources/{project.pk}/",
            {
                "form": "cohort",
                "label": "Fans",
                "cohort_ids": ["c-small"],
                "include_properties": "on",
                "prop_keys": "",
                "amplitude_id_field": "amplitude_id",
                "cohort_names_field": "amplitude_cohort_names",
                "cadence": "one_time",
                "timezone": "UTC",
            },
        )
    job = CohortImportJob.objects.get(project=project)
    run = ImportRun.objects.get(cohort_job=job)
    assert run.status == "succeeded", run.error
    assert job.next_run_at is None  # its one run: nothing left for the scheduler
    assert f"run #{run.pk} is queued and starts within a minute" in client.get(saved["Location"]).content.decode()
    assert Segment.objects.get(workspace=acme, external_id="c-small").size == 40
    page = client.get(f"/sources/{project.pk}/").content.decode()
    assert 'id="budget-left">499<' in page


def test_no_get_makes_an_authenticated_call_to_amplitude(client, alice, acme, amp):
    """A link, an image or a prefetch can trigger a GET: listing cohorts and testing the connection
    call Amplitude with the project's keys, so they answer only a (CSRF-protected) POST."""
    client.force_login(alice)
    connect(client, amp)
    project = AmplitudeProject.objects.get(workspace=acme)
    project.cohorts.all().delete()  # connecting listed them (its test before save): start without
    amp.sandbox.reset_stats()
    page = client.get(f"/sources/{project.pk}/?cohorts=1")
    assert page.status_code == 200 and "Small fans" not in page.content.decode()
    assert client.get(f"/sources/{project.pk}/test/").status_code == 405
    assert amp.sandbox.request_count("cohorts") == 0
    assert "Small fans" in client.post(f"/sources/{project.pk}/", {"form": "cohorts"}, follow=True).content.decode()
    assert amp.sandbox.request_count("cohorts") == 1


def test_the_posts_need_a_csrf_token(client, alice, acme, amp):
    from django.test import Client

    client.force_login(alice)
    connect(client, amp)
    project = AmplitudeProject.objects.get(workspace=acme)
    amp.sandbox.reset_stats()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(f"/sources/{project.pk}/", {"form": "cohorts"}).status_code == 403
    assert strict.post(f"/sources/{project.pk}/test/").status_code == 403
    assert amp.sandbox.request_count("cohorts") == 0


def test_wrong_secret_is_said_plainly(client, alice, acme, amp):
    client.force_login(alice)
    connect(client, amp)
    project = AmplitudeProject.objects.get(workspace=acme)
    auth = project.authorization
    auth.set_secrets({"secret_key": "wrong"})
    auth.save()
    assert "Connection failed" in client.post(f"/sources/{project.pk}/test/").content.decode()


def test_daily_job_without_time_is_refused_next_to_the_field(client, alice, acme, amp):
    client.force_login(alice)
    connect(client, amp)
    project = AmplitudeProject.objects.get(workspace=acme)
    html = client.post(
        f"/sources/{project.pk}/",
        {
            "form": "cohort",
            "label": "Daily",
            "amplitude_id_field": "amplitude_id",
            "cohort_names_field": "amplitude_cohort_names",
            "cadence": "daily",
            "timezone": "Europe/Berlin",
        },
    ).content.decode()
    assert "A daily import needs a time of day." in html
    assert not CohortImportJob.objects.exists()


def test_marketer_cannot_connect_a_project(client, bob, acme, amp):
    client.force_login(bob)
    page = client.get("/sources/").content.decode()
    assert (
        "Connect an Amplitude project" in page and "disabled" in page and "Save authorization and connect" not in page
    )
    assert connect(client, amp).status_code == 403
    assert not AmplitudeProject.objects.exists()


def test_viewer_cannot_start_a_run(client, vera, acme, amp):
    client.force_login(vera)
    assert client.post("/sources/jobs/cohort/1/run/").status_code == 403


def test_amplitude_setup_page_lists_the_urls(client, bob, acme_inbound_key):
    client.force_login(bob)
    html = client.get("/settings/amplitude-setup/").content.decode()
    assert "http://testserver/api/amplitude/lists/$listId/add" in html
    assert acme_inbound_key[:12] in html and acme_inbound_key not in html
