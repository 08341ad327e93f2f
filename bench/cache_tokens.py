"""Issue-5 measurements, each against a baseline in the same run:

1. cache hits: server-side time (the `total` of `Server-Timing`) of a hit vs a miss, and
   end-to-end latency of a hit vs a call to the fake upstream through chatgate;
2. tokenizer throughput: chatgate's counts (bpe-openai) vs tiktoken on the same text;
3. budget reservations: added latency per request, memory and Redis, vs no budget.

    python -m bench.cache_tokens            # full run
    python -m bench.cache_tokens --smoke    # quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.resources
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import tiktoken
from tests.fake_upstream import FakeUpstream
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public

from bench._common import Server, machine, percentile, timed_requests, write_results
from chatgate.tokenizers import encoding_for

MASTER = "bench-master-key-0123456789abcdef"


def cache_hits(directory: Path, upstream: FakeUpstream, count: int) -> dict[str, Any]:
    config = directory / "cache.yaml"
    config.write_text(
        f"models:\n  - name: echo\n    provider: openai_compat\n    base_url: {upstream.base_url}\n"
    )
    server = Server(config=config)
    try:
        hit = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
        miss = {**hit, "temperature": 1}
        asyncio.run(timed_requests(server.url, hit, 20, "unused"))  # warm, and fill the cache
        hit_wall, hit_server = asyncio.run(timed_requests(server.url, hit, count, "unused"))
        miss_wall, miss_server = asyncio.run(timed_requests(server.url, miss, count, "unused"))
    finally:
        server.stop()
    return {
        "hit_server_p50_ms": statistics.median(hit_server) * 1000,
        "hit_server_p99_ms": percentile(hit_server, 0.99) * 1000,
        "miss_server_p50_ms": statistics.median(miss_server) * 1000,
        "hit_wall_p50_ms": statistics.median(hit_wall) * 1000,
        "miss_wall_p50_ms": statistics.median(miss_wall) * 1000,
    }


def _tiktoken(name: str, directory: Path) -> tiktoken.Encoding:
    packed = importlib.resources.files("bpe_openai") / "data" / f"{name}.tiktoken.gz"
    plain = directory / f"{name}.tiktoken"
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *_a, **_k: load_tiktoken_bpe(str(plain))
    try:
        return tiktoken.Encoding(**openai_public.o200k_base())
    finally:
        openai_public.load_tiktoken_bpe = original


def tokenizer_throughput(directory: Path, rounds: int) -> dict[str, Any]:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text() * 2
    ours, theirs = encoding_for("o200k_base"), _tiktoken("o200k_base", directory)
    assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)
    results = {}
    for name, encoder in (("chatgate (bpe-openai)", ours), ("tiktoken", theirs)):
        started = time.perf_counter()
        for _ in range(rounds):
            tokens = len(encoder.encode_ordinary(text))
        results[name] = tokens * rounds / (time.perf_counter() - started)
    return results


def budget_overhead(directory: Path, upstream: FakeUpstream, count: int) -> dict[str, Any]:
    prefix = f"bench-{secrets.token_hex(3)}"
    variants = {
        "no budget": "",
        "memory": "",
        "redis": f"budgets: {{backend: redis, redis_prefix: {prefix}}}",
    }
    results = {}
    for name, extra in variants.items():
        config = directory / f"budget-{name.replace(' ', '-')}.yaml"
        config.write_text(
            f"{extra}\nmodels:\n  - name: echo\n    provider: openai_compat\n"
            f"    base_url: {upstream.base_url}\n    pricing: {{input: 1, output: 1}}\n"
        )
        server = Server(config=config, env={"CHATGATE_MASTER_KEY": MASTER})
        try:
            key = "unused"
            if name != "no budget":
                key = asyncio.run(_create_key(server.url))
            body = {
                "model": "echo",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 5,
            }
            wall, _ = asyncio.run(
                timed_requests(server.url, body, count + 20, key if name != "no budget" else MASTER)
            )
            wall = wall[20:]
        finally:
            server.stop()
        results[name] = {
            "p50_ms": statistics.median(wall) * 1000,
            "p99_ms": percentile(wall, 0.99) * 1000,
        }
    return results


async def _create_key(url: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/admin/keys",
            json={"name": "bench", "budget": {"daily": 1e9, "monthly": 1e9, "total": 1e9}},
            headers={"Authorization": f"Bearer {MASTER}"},
        ) as response,
    ):
        body = await response.json()
        return str(body["secret"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    count = 30 if args.smoke else args.requests
    upstream = FakeUpstream()
    upstream.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            hits = cache_hits(Path(tmp), upstream, count)
            tokens = tokenizer_throughput(Path(tmp), 3 if args.smoke else 30)
            budgets = budget_overhead(Path(tmp), upstream, count)
    finally:
        upstream.stop()
    ours, theirs = tokens["chatgate (bpe-openai)"], tokens["tiktoken"]
    base = budgets["no budget"]
    lines = [
        f"Cache, tokenizer and budgets ({count} sequential requests per variant)",
        "",
        "| cache | server-side p50 | server-side p99 | end-to-end p50 |",
        "|---|---|---|---|",
        f"| hit | {hits['hit_server_p50_ms']:.3f} ms | {hits['hit_server_p99_ms']:.3f} ms "
        f"| {hits['hit_wall_p50_ms']:.2f} ms |",
        f"| miss (fake upstream) | {hits['miss_server_p50_ms']:.3f} ms | "
        f"| {hits['miss_wall_p50_ms']:.2f} ms |",
        "",
        "| tokenizer (o200k_base, same text) | tokens/s | ratio |",
        "|---|---|---|",
        f"| chatgate (bpe-openai) | {ours:,.0f} | {ours / theirs:.2f}x |",
        f"| tiktoken | {theirs:,.0f} | 1.00x |",
        "",
        "| budget reservation | p50 | p99 | added p50 |",
        "|---|---|---|---|",
    ]
    for name, row in budgets.items():
        added = row["p50_ms"] - base["p50_ms"]
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms | {added:+.2f} ms |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.smoke:
        write_results(
            "cache_tokens",
            {"machine": machine(), "cache": hits, "tokenizer": tokens, "budgets": budgets},
            table,
        )


if __name__ == "__main__":
    main()
