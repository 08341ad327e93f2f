"""Batch throughput and its effect on interactive traffic, each against a baseline in the same
run:

1. a batch of 2,000 chat lines against the fake upstream answering after 50 ms, runner
   concurrency 64: wall time from create to ``completed`` (target: under 15 s), lines/s;
2. interactive latency (open-loop requests to a fast model) while no batch runs vs while the
   batch runs: the batch's lines go at ``low`` priority, so interactive p99 should barely move.

    python -m bench batches            # full run
    python -m bench batches --smoke    # quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.fake_upstream import FakeUpstream

from bench._common import MASTER, Server, machine, markdown_table, write_results
from bench.load import LoadResult, open_loop


async def _submit(url: str, lines: int) -> str:
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "slow", "messages": [{"role": "user", "content": f"line {i}"}]},
        }
        for i in range(lines)
    ]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", content, filename="bench.jsonl")
        async with session.post(f"{url}/v1/files", data=form) as response:
            uploaded = await response.json()
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        async with session.post(f"{url}/v1/batches", json=body) as response:
            created = await response.json()
    return str(created["id"])


async def _wait(url: str, batch_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{url}/v1/batches/{batch_id}") as response:
                batch: dict[str, Any] = await response.json()
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                return batch
            await asyncio.sleep(0.05)


async def _during_batch(
    url: str, lines: int, rate: float, duration: float
) -> tuple[float, dict[str, Any], LoadResult]:
    started = time.perf_counter()
    batch_id = await _submit(url, lines)
    interactive = asyncio.create_task(_interactive(url, rate, duration))
    batch = await _wait(url, batch_id)
    wall = time.perf_counter() - started
    return wall, batch, await interactive


async def _interactive(url: str, rate: float, duration: float) -> LoadResult:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": 1}
    headers = {"Authorization": f"Bearer {MASTER}"}
    return await open_loop(f"{url}/v1/chat/completions", body, headers, rate, duration, warmup=0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50, help="interactive requests/s")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    lines = 100 if args.smoke else args.lines
    duration = 1.0 if args.smoke else 6.0
    upstream = FakeUpstream()
    upstream.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "chatgate.json"
            config.write_text(
                json.dumps(
                    {
                        "batches": {"concurrency": 64, "poll_interval": 0.05},
                        "models": [
                            {
                                "name": "echo",
                                "provider": "openai_compat",
                                "base_url": upstream.base_url,
                            },
                            {
                                "name": "slow",
                                "provider": "openai_compat",
                                "base_url": upstream.base_url,
                                "upstream_model": "sleep-0.05-echo",
                            },
                        ],
                    }
                )
            )
            server = Server(env={"CHATGATE_MASTER_KEY": MASTER}, config=config)
            try:
                alone = asyncio.run(_interactive(server.url, args.rate, duration))
                wall, batch, during = asyncio.run(
                    _during_batch(server.url, lines, args.rate, duration)
                )
            finally:
                server.stop()
    finally:
        upstream.stop()
    counts = batch["request_counts"]
    assert batch["status"] == "completed" and counts["completed"] == lines, batch
    table = "\n".join(
        [
            f"Batch of {lines} lines, fake upstream at 50 ms, runner concurrency 64",
            "",
            markdown_table(
                ["batch", "wall time", "lines/s", "target"],
                [[f"{lines} lines", f"{wall:.2f} s", f"{lines / wall:.0f}", "< 15 s for 2,000"]],
            ),
            "",
            markdown_table(
                [f"interactive, {args.rate:.0f} req/s", "p50", "p99", "errors"],
                [
                    [name, f"{r.p50_ms:.2f} ms", f"{r.p99_ms:.2f} ms", str(r.errors)]
                    for name, r in (("no batch running", alone), ("while the batch runs", during))
                ],
            ),
        ]
    )
    print(table)
    if not args.smoke:
        write_results(
            "batches",
            {
                "machine": machine(),
                "lines": lines,
                "wall_s": wall,
                "interactive_alone": alone.__dict__,
                "interactive_during": during.__dict__,
            },
            table,
        )


if __name__ == "__main__":
    main()
