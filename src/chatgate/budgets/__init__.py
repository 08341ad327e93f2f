"""Budget counters: running spend per scope and period, reserved before a request and settled
after it, in process (memory) or shared by replicas (Redis)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.exceptions import RedisError

from chatgate.redis_client import SharedRedis

__all__ = ["BudgetCounters", "BudgetsUnavailable", "Loader", "MemoryBudgets", "RedisBudgets"]

Loader = Callable[[list[str]], Awaitable[dict[str, float]]]
"""Settled spend of counters not yet in the backend, from the store."""


class BudgetsUnavailable(Exception):
    """The shared budget backend could not be reached."""


class BudgetCounters(Protocol):
    async def reserve(
        self, caps: list[tuple[str, float]], amount: float, load: Loader
    ) -> str | None:
        """Add ``amount`` to every counter if each stays within its cap; otherwise change
        nothing and return the counter that would overflow."""
        ...

    async def settle(self, names: list[str], delta: float) -> None:
        """Correct the counters by ``delta`` (actual cost minus what was reserved)."""
        ...

    async def close(self) -> None: ...


_EPSILON = 1e-9


class MemoryBudgets:
    def __init__(self) -> None:
        self._values: dict[str, float] = {}

    async def reserve(
        self, caps: list[tuple[str, float]], amount: float, load: Loader
    ) -> str | None:
        missing = [name for name, _ in caps if name not in self._values]
        if missing:
            loaded = await load(missing)
            for name in missing:
                self._values.setdefault(name, loaded.get(name, 0.0))
        for name, cap in caps:  # no await from here on: the check and the add are atomic
            if self._values[name] + amount > cap + _EPSILON:
                return name
        for name, _ in caps:
            self._values[name] += amount
        return None

    async def settle(self, names: list[str], delta: float) -> None:
        for name in names:
            self._values[name] = self._values.get(name, 0.0) + delta

    async def close(self) -> None:
        self._values.clear()


_RESERVE = """
local amount = tonumber(ARGV[1])
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + amount > tonumber(ARGV[i + 1]) + 1e-9 then return i end
end
for i = 1, #KEYS do redis.call('INCRBYFLOAT', KEYS[i], amount) end
return 0
"""


def _expiry(name: str) -> int | None:
    period = name.rsplit("|", 1)[-1]
    if period.startswith("d:"):
        return 3 * 86400
    if period.startswith("m:"):
        return 35 * 86400
    return None


class RedisBudgets:
    def __init__(self, redis: SharedRedis, *, prefix: str):
        self._shared = redis
        self._redis = redis.client
        self._prefix = f"{prefix}:budget:"
        self._reserve = self._redis.register_script(_RESERVE)

    async def reserve(
        self, caps: list[tuple[str, float]], amount: float, load: Loader
    ) -> str | None:
        keys = [self._prefix + name for name, _ in caps]
        try:
            async with self._shared.deadline():
                present = await self._redis.mget(keys)
            missing = [
                name for (name, _), value in zip(caps, present, strict=True) if value is None
            ]
            if missing:
                loaded = await load(missing)
                for name in missing:
                    await self._redis.set(
                        self._prefix + name, loaded.get(name, 0.0), nx=True, ex=_expiry(name)
                    )
            async with self._shared.deadline():
                refused = int(
                    await self._reserve(keys=keys, args=[amount, *(cap for _, cap in caps)])
                )
        except TimeoutError:
            raise BudgetsUnavailable("no answer from Redis within redis.timeout") from None
        except RedisError as exc:
            raise BudgetsUnavailable(str(exc)) from exc
        return None if refused == 0 else caps[refused - 1][0]

    async def settle(self, names: list[str], delta: float) -> None:
        try:
            async with self._shared.deadline(), self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.incrbyfloat(self._prefix + name, delta)
                await pipe.execute()
        except TimeoutError:
            raise BudgetsUnavailable("no answer from Redis within redis.timeout") from None
        except RedisError as exc:
            raise BudgetsUnavailable(str(exc)) from exc

    async def close(self) -> None:
        """Nothing of its own to close: the Redis client is shared (``RedisClients``)."""
