# The shared connector fixtures (sandbox partners, fast delivery settings) are the contract suite's.
from tests.connectors.conftest import fast_delivery, partners  # noqa: F401
