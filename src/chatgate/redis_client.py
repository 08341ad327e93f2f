"""Redis for the state replicas share (rate limits, budgets, the response cache): one bounded
connection pool per URL in each process, and calls timed in event-loop time.

- **Bounded, queued**: at most ``redis.max_connections`` connections per URL; a call beyond that
  waits for a free one instead of failing (redis-py's default pool refuses the 101st concurrent
  call with "Too many connections" — under a burst, that was a 503 from the limiter).
- **Load is not an outage**: a call fails with ``TimeoutError`` only after ``redis.timeout``
  seconds in which the event loop kept time (:class:`~chatgate.looptime.LoopClock`); a refused or
  reset connection (Redis stopped) fails at once with ``RedisError``. Callers map both to their
  own "unavailable" (the limiter then follows ``limits.on_backend_error``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from chatgate.config import RedisConfig
from chatgate.looptime import LoopClock

__all__ = ["RedisClients", "SharedRedis"]


class SharedRedis:
    """One Redis URL: the client (over a blocking pool) and the timeout its calls run under."""

    def __init__(self, url: str, config: RedisConfig, clock: LoopClock):
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=config.max_connections,
            timeout=None,  # waiting for a pooled connection is bounded by `deadline()` below
            socket_timeout=None,
            socket_connect_timeout=None,
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._timeout = config.timeout
        self._clock = clock

    @contextlib.asynccontextmanager
    async def deadline(self) -> AsyncIterator[None]:
        """Bound one call (waiting for a connection included) by ``redis.timeout`` of loop
        time; raises ``TimeoutError`` past it."""
        async with self._clock.timeout(self._timeout):
            yield

    async def close(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


class RedisClients:
    """The process's Redis clients, one per URL, shared by every component that uses that URL."""

    def __init__(self, config: RedisConfig):
        self._config = config
        self._clock = LoopClock()
        self._clients: dict[str, SharedRedis] = {}

    def get(self, url: str) -> SharedRedis:
        client = self._clients.get(url)
        if client is None:
            client = self._clients[url] = SharedRedis(url, self._config, self._clock)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._clock.close()
