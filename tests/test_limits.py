"""The limiter's semantics, identical on both backends (memory and the real Redis)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from chatgate.config import RedisConfig
from chatgate.limits import Limiter, MemoryLimiter, RedisLimiter, ScopeLimit, rate_limit_headers
from chatgate.limits.headers import duration
from chatgate.redis_client import RedisClients

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Limiter]:
    clients = RedisClients(RedisConfig())
    if request.param == "memory":
        backend: Limiter = MemoryLimiter()
    else:
        backend = RedisLimiter(clients.get(redis_url), prefix=f"test{secrets.token_hex(4)}")
    yield backend
    await backend.close()
    await clients.close()


def scope(**limits: int) -> ScopeLimit:
    return ScopeLimit(f"s{secrets.token_hex(3)}", **limits)


async def test_requests_per_minute(limiter: Limiter) -> None:
    limit = scope(rpm=3)
    results = [await limiter.acquire(f"r{i}", [limit], 1, 30) for i in range(5)]
    assert [d.admitted for d in results] == [True, True, True, False, False]
    refused = results[3]
    assert refused.refused_by == f"{limit.scope}:rpm"
    assert 55 < refused.retry_after <= 60
    assert results[2].states[0].remaining_requests == 0


async def test_tokens_per_minute_with_settlement(limiter: Limiter) -> None:
    limit = scope(tpm=1000)
    first = await limiter.acquire("a", [limit], 800, 30)
    assert first.admitted and first.states[0].remaining_tokens == 200
    assert not (await limiter.acquire("b", [limit], 300, 30)).admitted
    await limiter.finish("a", [limit], 100)  # it used far less than it reserved
    second = await limiter.acquire("b", [limit], 300, 30)
    assert second.admitted and second.states[0].remaining_tokens == 600


async def test_a_request_larger_than_the_limit_is_never_admitted(limiter: Limiter) -> None:
    decision = await limiter.acquire("big", [scope(tpm=100)], 101, 30)
    assert not decision.admitted and decision.never


async def test_concurrency_leases(limiter: Limiter) -> None:
    limit = scope(concurrent=2)
    assert (await limiter.acquire("a", [limit], 1, 30)).admitted
    assert (await limiter.acquire("b", [limit], 1, 30)).admitted
    refused = await limiter.acquire("c", [limit], 1, 30)
    assert not refused.admitted and refused.refused_by == f"{limit.scope}:concurrent"
    await limiter.finish("a", [limit], 1)
    assert (await limiter.acquire("c", [limit], 1, 30)).admitted


async def test_all_scopes_or_none(limiter: Limiter) -> None:
    wide, narrow = scope(rpm=10), scope(rpm=1)
    assert (await limiter.acquire("a", [wide, narrow], 1, 30)).admitted
    refused = await limiter.acquire("b", [wide, narrow], 1, 30)
    assert not refused.admitted and refused.refused_by == f"{narrow.scope}:rpm"
    # the refused request took nothing from the wide scope
    assert (await limiter.acquire("c", [wide], 1, 30)).states[0].remaining_requests == 8


async def test_concurrent_decisions_never_overshoot(limiter: Limiter) -> None:
    limit = scope(rpm=25)
    decisions = await asyncio.gather(
        *(limiter.acquire(f"r{i}", [limit], 1, 30) for i in range(100))
    )
    assert sum(d.admitted for d in decisions) == 25


async def test_headers(limiter: Limiter) -> None:
    decision = await limiter.acquire("a", [scope(rpm=100, tpm=5000)], 1200, 30)
    headers = rate_limit_headers(decision)
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "99"
    assert headers["x-ratelimit-limit-tokens"] == "5000"
    assert headers["x-ratelimit-remaining-tokens"] == "3800"
    assert headers["x-ratelimit-reset-requests"] in ("59s", "1m0s")
    assert "retry-after" not in headers


def test_duration_format() -> None:
    assert duration(0.25) == "250ms"
    assert duration(1) == "1s"
    assert duration(360) == "6m0s"
    assert duration(3723) == "1h2m3s"
