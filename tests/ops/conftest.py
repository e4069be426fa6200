# Sandbox partners and Amplitude, fast backoffs: the delivery and sources tests' fixtures.
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401
from tests.sources.conftest import amp, amplitude_auth, cohort_job, fast_sources, project  # noqa: F401

# Real Celery workers, killed on purpose (tests/workers.py).
from tests.workers import broker_tasks, workers  # noqa: F401
