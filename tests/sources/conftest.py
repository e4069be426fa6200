"""A real sandbox Amplitude (HTTP on a free port) and an Acme project connected to it."""

import pytest

from integrations.models import Authorization
from integrations.sandbox.amplitude import AmplitudeSandbox, running_amplitude_sandbox
from integrations.sources.models import AmplitudeProject, Cadence, CohortImportJob, EventImportJob


@pytest.fixture(autouse=True)
def fast_sources(settings):
    # No real waiting in tests: polls and backoffs are instant, retries few.
    settings.SOURCES_POLL_INTERVAL = 0.0
    settings.SOURCES_RETRY_BACKOFF = 0.0
    settings.SOURCES_HTTP_RETRIES = 2


@pytest.fixture
def amp():
    with running_amplitude_sandbox(AmplitudeSandbox(seed=7, anonymous_fraction=0.1)) as running:
        yield running


@pytest.fixture
def amplitude_auth(acme, amp):
    auth = Authorization(workspace=acme, provider="amplitude", label="Amplitude prod")
    auth.set_secrets({"api_key": amp.auth[0], "secret_key": amp.auth[1]})
    auth.save()
    return auth


@pytest.fixture
def project(acme, amp, amplitude_auth):
    return AmplitudeProject.objects.create(
        workspace=acme, label="Music app", base_url=amp.base_url, authorization=amplitude_auth
    )


@pytest.fixture
def cohort_job(acme, project):
    # Hourly, so tests can run it again and again (a one-time job runs once); with no next_run_at, the
    # scheduler never starts it by itself.
    return CohortImportJob.objects.create(workspace=acme, project=project, label="Cohorts", cadence=Cadence.HOURLY)


@pytest.fixture
def event_job(acme, project):
    return EventImportJob.objects.create(workspace=acme, project=project, label="Events", backfill_days=1)
