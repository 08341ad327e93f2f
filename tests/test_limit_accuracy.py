"""Limits hold across replicas: three `chatgate serve` processes on one Redis."""

from __future__ import annotations

import asyncio
import secrets
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


async def _fire(gateways: list[Gateway], count: int) -> list[dict[str, Any] | None]:
    connector = aiohttp.TCPConnector(limit=60)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> dict[str, Any] | None:
            url = f"{gateways[i % len(gateways)].base_url}/chat/completions"
            body: dict[str, Any] = {
                "model": "echo",
                "messages": [{"role": "user", "content": "one two three"}],
                "max_tokens": 20,
            }
            async with session.post(url, json=body) as response:
                if response.status == 429:
                    return None
                assert response.status == 200, await response.text()
                result: dict[str, Any] = await response.json()
                return result

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_requests_per_minute_across_three_replicas(
    upstream: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    gateways = three_replicas(upstream, tmp_path, redis_url, "rpm: 100")
    try:
        results = asyncio.run(_fire(gateways, 600))
    finally:
        for gateway in gateways:
            gateway.stop()
    admitted = sum(r is not None for r in results)
    assert 100 <= admitted <= 101, admitted


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
