"""Limits hold across replicas: three `chatgate serve` processes on one Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, start_gateway

pytestmark = pytest.mark.slow


def three_replicas(
    upstream: FakeUpstream, tmp_path: Path, redis_url: str, limit: str
) -> list[Gateway]:
    config = f"""
limits:
  backend: redis
  redis_url: {redis_url}
  redis_prefix: accuracy-{secrets.token_hex(4)}
  global: {{{limit}}}
models:
  - name: echo
    provider: openai_compat
    base_url: {upstream.base_url}
"""
    return [start_gateway(tmp_path / f"r{i}", config=config) for i in range(3)]


async def _fire(
    gateways: list[Gateway], count: int, statuses: Counter[int] | None = None
) -> list[dict[str, Any] | None]:
    """``count`` requests at once (one connection each), spread over the replicas; the answers
    admitted (None for each 429), and every status in ``statuses``."""
    statuses = Counter() if statuses is None else statuses
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)  # no client-side queue: all of them at once
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int) -> dict[str, Any] | None:
            url = f"{gateways[i % len(gateways)].base_url}/chat/completions"
            body: dict[str, Any] = {
                "model": "echo",
                "messages": [{"role": "user", "content": "one two three"}],
                "max_tokens": 20,
            }
            async with session.post(url, json=body) as response:
                statuses[response.status] += 1
                if response.status == 429:
                    assert response.headers["retry-after"]
                    assert any(h.startswith("x-ratelimit-") for h in response.headers)
                    error = (await response.json())["error"]
                    assert error["type"] == "rate_limit_error"
                    return None
                assert response.status == 200, await response.text()
                result: dict[str, Any] = await response.json()
                return result

        results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, (statuses, failures[:3])
    return [r for r in results if not isinstance(r, BaseException)]


def test_a_burst_over_three_replicas_is_answered_200_or_429_exactly(
    upstream: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    """600 requests at once over 3 replicas on one Redis, 100 a minute allowed: the saturated
    replicas' event loops lag for seconds, and that is not a Redis outage."""
    gateways = three_replicas(upstream, tmp_path, redis_url, "rpm: 100")
    statuses: Counter[int] = Counter()
    try:
        asyncio.run(_fire(gateways, 600, statuses))
    finally:
        for gateway in gateways:
            gateway.stop()
    assert statuses == {200: 100, 429: 500}, statuses


def test_tokens_per_minute_across_three_replicas(
    upstream: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    gateways = three_replicas(upstream, tmp_path, redis_url, "tpm: 2000")
    try:
        results = asyncio.run(_fire(gateways, 600))
    finally:
        for gateway in gateways:
            gateway.stop()
    used = sum(r["usage"]["total_tokens"] for r in results if r is not None)
    assert sum(r is not None for r in results) > 0
    assert used <= 2000, used
