import pytest

from integrations.redis_client import redis_client
from tests.delivery.helpers import Partners


@pytest.fixture
def partners():
    started = Partners()
    yield started
    started.close()


@pytest.fixture(autouse=True)
def fast_delivery(settings):
    """Millisecond backoffs and short timeouts: the logic is the same, the suite stays fast."""
    settings.DELIVERY_BACKOFF_BASE_MS = 5
    settings.DELIVERY_BACKOFF_CAP_MS = 40
    settings.DELIVERY_READ_TIMEOUT = 1
    settings.DELIVERY_SHORT_WAIT_SECONDS = 2
    for key in redis_client().scan_iter("delivery:slots:*"):
        redis_client().delete(key)
