"""A per-destination concurrency cap shared by every worker: a Redis sorted set of lease tokens.

Each in-flight request holds one token scored by its expiry; acquiring first drops expired tokens
(a worker killed mid-request frees its slot when the lease runs out), then adds a token only if
fewer than `cap` remain. The check-and-add is one Lua script, so it is atomic across workers.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from integrations.connectors.base import Connector
from integrations.redis_client import redis_client

_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
  return 1
end
return 0
"""


class DestinationSemaphore:
    def __init__(self, destination_id: int, cap: int, lease_seconds: float | None = None) -> None:
        self.key = f"delivery:slots:{destination_id}"
        self.cap = cap
        self.lease = lease_seconds or settings.DELIVERY_SEMAPHORE_LEASE_SECONDS
        self._acquire = redis_client().register_script(_ACQUIRE)

    def try_acquire(self) -> str | None:
        token = uuid.uuid4().hex
        return token if self._acquire(keys=[self.key], args=[self.cap, self.lease, token]) else None

    def release(self, token: str) -> None:
        redis_client().zrem(self.key, token)

    @contextmanager
    def slot(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Wait for a free slot (polling, 10-50 ms); raises InterruptedError when `stop` is set first."""
        stop = stop or threading.Event()
        delay = 0.01
        while (token := self.try_acquire()) is None:
            if stop.wait(delay):
                raise InterruptedError("run stopping")
            delay = min(delay * 1.5, 0.05)
        try:
            yield
        finally:
            self.release(token)


def connector_slots(connector: Connector, destination_id: int) -> DestinationSemaphore:
    """The request slots a connector's calls to this destination take: its cap, under its key (one
    destination, or a whole partner account), shared by syncs, setup calls and streams alike."""
    return DestinationSemaphore(connector.concurrency_key(destination_id), cap=max(1, connector.concurrent_requests()))
