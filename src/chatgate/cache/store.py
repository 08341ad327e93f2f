"""Where cached completions live: an in-process LRU bounded in bytes (default) or Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from redis.exceptions import RedisError

from chatgate.redis_client import SharedRedis

__all__ = ["CacheUnavailable", "MemoryCache", "RedisCache", "ResponseCache"]


class CacheUnavailable(Exception):
    """The shared cache backend could not be reached (the request goes on uncached)."""


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """Least-recently-used entries evicted first once ``max_bytes`` is reached."""

    def __init__(self, max_bytes: int):
        self._max = max_bytes
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.size = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self._max:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, time.monotonic() + ttl)
        self.size += len(value)
        while self.size > self._max:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self.size = 0


class RedisCache:
    def __init__(self, redis: SharedRedis, *, prefix: str):
        self._shared = redis
        self._redis = redis.client
        self._prefix = f"{prefix}:cache:"

    async def get(self, key: str) -> bytes | None:
        try:
            async with self._shared.deadline():
                value = await self._redis.get(self._prefix + key)
        except TimeoutError:
            raise CacheUnavailable("no answer from Redis within redis.timeout") from None
        except RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc
        return value if isinstance(value, bytes) or value is None else value.encode()

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            async with self._shared.deadline():
                await self._redis.set(self._prefix + key, value, px=max(1, int(ttl * 1000)))
        except TimeoutError:
            raise CacheUnavailable("no answer from Redis within redis.timeout") from None
        except RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def close(self) -> None:
        """Nothing of its own to close: the Redis client is shared (``RedisClients``)."""
