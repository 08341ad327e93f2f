"""Cost and accuracy of rate limiting.

1. Added latency per request through chatgate (concurrency 1, fake upstream on loopback):
   no limits (baseline, same run) vs limits on the memory backend vs limits on Redis.
2. The limiter's own decision time (acquire + settle + release), in process.
3. Accuracy: three replicas on one Redis against 100 requests/minute and 2,000 tokens/minute.

    python -m bench.limits            # full run
    python -m bench.limits --smoke    # a quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.fake_upstream import FakeUpstream

from bench._common import Server, machine, percentile, write_results
from chatgate.config import RedisConfig
from chatgate.limits import Limiter, MemoryLimiter, RedisLimiter, ScopeLimit
from chatgate.redis_client import RedisClients

REDIS = "redis://127.0.0.1:6379/0"


def _config(directory: Path, upstream: FakeUpstream, limits: str) -> Path:
    path = directory / f"chatgate-{secrets.token_hex(3)}.yaml"
    path.write_text(
        f"{limits}\nmodels:\n  - name: echo\n    provider: openai_compat\n"
        f"    base_url: {upstream.base_url}\n"
    )
    return path


async def _latencies(url: str, count: int) -> list[float]:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count + 20):
            started = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                await response.read()
                assert response.status == 200, response.status
            out.append(time.perf_counter() - started)
    return out[20:]  # warm-up dropped


def http_overhead(directory: Path, upstream: FakeUpstream, count: int) -> dict[str, Any]:
    big = "{rpm: 10000000, tpm: 1000000000, concurrent: 1000}"
    variants = {
        "no limits": "",
        "memory": f"limits:\n  global: {big}",
        "redis": f"limits:\n  backend: redis\n  redis_url: {REDIS}\n"
        f"  redis_prefix: bench-{secrets.token_hex(3)}\n  global: {big}",
    }
    results: dict[str, Any] = {}
    for name, limits in variants.items():
        server = Server(config=_config(directory, upstream, limits))
        try:
            samples = asyncio.run(_latencies(server.url, count))
        finally:
            server.stop()
        results[name] = {
            "p50_ms": statistics.median(samples) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
        }
    return results


async def _decisions(limiter: Limiter, count: int) -> list[float]:
    limits = [
        ScopeLimit(f"bench-{secrets.token_hex(3)}", rpm=10**9, tpm=10**12, concurrent=10**6),
        ScopeLimit(f"bench-{secrets.token_hex(3)}", rpm=10**9, tpm=10**12),
    ]
    out = []
    for i in range(count):
        started = time.perf_counter()
        await limiter.acquire(f"r{i}", limits, 100, 30)
        await limiter.finish(f"r{i}", limits, 50)
        out.append(time.perf_counter() - started)
    await limiter.close()
    return out


def decision_cost(count: int) -> dict[str, Any]:
    results = {}
    for name, limiter in (
        ("memory", MemoryLimiter()),
        (
            "redis",
            RedisLimiter(
                RedisClients(RedisConfig()).get(REDIS), prefix=f"bench-{secrets.token_hex(3)}"
            ),
        ),
    ):
        samples = asyncio.run(_decisions(limiter, count))
        results[name] = {
            "p50_us": statistics.median(samples) * 1e6,
            "p99_us": percentile(samples, 0.99) * 1e6,
        }
    return results


async def _burst(urls: list[str], count: int) -> list[int | None]:
    body = {"model": "echo", "messages": [{"role": "user", "content": "one two three"}]}
    body["max_tokens"] = 20  # type: ignore[assignment]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=60)) as session:

        async def one(i: int) -> int | None:
            async with session.post(f"{urls[i % 3]}/v1/chat/completions", json=body) as response:
                if response.status == 429:
                    return None
                result = await response.json()
                return int(result["usage"]["total_tokens"])

        return await asyncio.gather(*(one(i) for i in range(count)))


def accuracy(directory: Path, upstream: FakeUpstream, count: int) -> dict[str, Any]:
    results = {}
    for name, limit in (("rpm 100", "rpm: 100"), ("tpm 2000", "tpm: 2000")):
        limits = (
            f"limits:\n  backend: redis\n  redis_url: {REDIS}\n"
            f"  redis_prefix: acc-{secrets.token_hex(3)}\n  global: {{{limit}}}"
        )
        config = _config(directory, upstream, limits)
        servers = [Server(config=config) for _ in range(3)]
        try:
            outcome = asyncio.run(_burst([s.url for s in servers], count))
        finally:
            for server in servers:
                server.stop()
        admitted = [t for t in outcome if t is not None]
        results[name] = {"sent": count, "admitted": len(admitted), "tokens_used": sum(admitted)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    count = 50 if args.smoke else args.requests
    upstream = FakeUpstream()
    upstream.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            http = http_overhead(Path(tmp), upstream, count)
            decisions = decision_cost(count * 5)
            burst = accuracy(Path(tmp), upstream, 120 if args.smoke else 600)
    finally:
        upstream.stop()
    base = http["no limits"]
    lines = [
        f"Rate limiting, {count} sequential requests per variant (fake upstream, loopback)",
        "",
        "| variant | p50 | p99 | added p50 | added p99 |",
        "|---|---|---|---|---|",
    ]
    for name, row in http.items():
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms | "
            f"{row['p50_ms'] - base['p50_ms']:+.2f} ms | {row['p99_ms'] - base['p99_ms']:+.2f} ms |"
        )
    lines += ["", "| limiter decision (acquire + finish) | p50 | p99 |", "|---|---|---|"]
    for name, row in decisions.items():
        lines.append(f"| {name} | {row['p50_us']:.0f} µs | {row['p99_us']:.0f} µs |")
    lines += ["", "| 3 replicas on Redis | sent | admitted | tokens used |", "|---|---|---|---|"]
    for name, row in burst.items():
        lines.append(f"| {name} | {row['sent']} | {row['admitted']} | {row['tokens_used']} |")
    table = "\n".join(lines)
    print(table)
    if not args.smoke:
        write_results(
            "limits",
            {"machine": machine(), "http": http, "decisions": decisions, "accuracy": burst},
            table,
        )


if __name__ == "__main__":
    main()
