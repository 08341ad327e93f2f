"""Cost of observability, against a baseline in the same run:

1. added latency of the request log at a fixed request rate (log on vs off, fake upstream);
2. sustained write rate of the request log on SQLite and on PostgreSQL (batches of 500).

    python -m bench.observability            # full run
    python -m bench.observability --smoke    # quick check that it runs (CI)
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
import asyncpg
from tests.fake_upstream import FakeUpstream

from bench._common import Server, machine, percentile, write_results
from chatgate.state import Database
from chatgate.state.request_log import RequestLogStore, RequestRecord


async def _fixed_rate(url: str, rate: float, seconds: float) -> list[float]:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                await response.read()
                assert response.status == 200
            latencies.append(time.perf_counter() - started)

        tasks = []
        begin = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def logging_overhead(directory: Path, upstream: FakeUpstream, rate: float, seconds: float) -> Any:
    results = {}
    for name, flag in (("log off", "false"), ("log on", "true")):
        config = directory / f"observe-{flag}.yaml"
        config.write_text(
            f"observability: {{request_log: {flag}}}\nmodels:\n  - name: echo\n"
            f"    provider: openai_compat\n    base_url: {upstream.base_url}\n"
        )
        server = Server(config=config)
        try:
            asyncio.run(_fixed_rate(server.url, rate, 1.0))  # warm-up
            samples = asyncio.run(_fixed_rate(server.url, rate, seconds))
        finally:
            server.stop()
        results[name] = {
            "p50_ms": statistics.median(samples) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
        }
    return results


def _records(count: int) -> list[RequestRecord]:
    now = time.time()
    return [
        RequestRecord(
            request_id=f"req_{i}",
            at=now,
            key_id="key_bench",
            owner="team",
            model="gpt-4o",
            model_served="gpt-4o",
            provider="openai_compat",
            status=200,
            error_type=None,
            prompt_tokens=100,
            completion_tokens=50,
            cached_tokens=0,
            cost=0.001,
            request_bytes=400,
            response_bytes=900,
            queue_ms=0.0,
            ttft_ms=120.0,
            upstream_ms=300.0,
            total_ms=301.0,
            overhead_ms=0.4,
            cache="miss",
            attempts=1,
            stream=True,
            priority="normal",
        )
        for i in range(count)
    ]


async def _write_rate(url: str, seconds: float) -> float:
    database = Database(url)
    await database.upgrade()
    store = RequestLogStore(database)
    batch = _records(500)
    written = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await store.insert(batch)
        written += len(batch)
    rate = written / (time.perf_counter() - started)
    await database.close()
    return rate


async def _postgres(seconds: float) -> float:
    name = f"chatgate_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return await _write_rate(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", seconds)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    upstream = FakeUpstream()
    upstream.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            overhead = logging_overhead(Path(tmp), upstream, args.rate, seconds)
            sqlite = asyncio.run(_write_rate(f"sqlite+aiosqlite:///{tmp}/bench.db", seconds))
            postgres = asyncio.run(_postgres(seconds))
    finally:
        upstream.stop()
    base = overhead["log off"]
    lines = [
        f"Request log at {args.rate:g} requests/s for {seconds:g} s (fake upstream)",
        "",
        "| variant | p50 | p99 | added p50 | added p99 |",
        "|---|---|---|---|---|",
    ]
    for name, row in overhead.items():
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms | "
            f"{row['p50_ms'] - base['p50_ms']:+.2f} ms | {row['p99_ms'] - base['p99_ms']:+.2f} ms |"
        )
    lines += [
        "",
        "| request log writes (batches of 500) | records/s |",
        "|---|---|",
        f"| SQLite | {sqlite:,.0f} |",
        f"| PostgreSQL | {postgres:,.0f} |",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.smoke:
        write_results(
            "observability",
            {
                "machine": machine(),
                "overhead": overhead,
                "writes": {"sqlite": sqlite, "postgres": postgres},
            },
            table,
        )


if __name__ == "__main__":
    main()
