# The delivery tests' fixtures: sandbox partners per test, fast backoffs, free request slots.
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401
