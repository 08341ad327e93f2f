"""Evaluation throughput: ``chatgate eval``'s runner through a live chatgate against the fake
upstream answering after 50 ms, at concurrency 1 (the baseline, measured in the same run) and
higher, in cases per second.

    python -m bench evals            # full run
    python -m bench evals --smoke    # quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fake_upstream import FakeUpstream

from bench._common import Server, machine, markdown_table, write_results
from chatgate.evals import EvalClient, Runner, load_cases, load_plan


def throughput(directory: Path, server: Server, cases: int, concurrency: int) -> float:
    dataset = directory / f"cases-{concurrency}.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "input": f"case {i}", "expected": f"case {i}"}) + "\n"
            for i in range(cases)
        )
    )
    plan = directory / "variants.json"
    plan.write_text(json.dumps({"variants": [{"name": "v", "model": "sleep-0.05-echo"}]}))

    async def go() -> float:
        async with EvalClient(f"{server.url}/v1", None, 60) as client:
            runner = Runner(
                client,
                load_plan(plan),
                load_cases(dataset),
                directory / f"results-{concurrency}.jsonl",
                concurrency=concurrency,
            )
            started = time.perf_counter()
            await runner.run(lambda: None)
            return cases / (time.perf_counter() - started)

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    cases = 20 if args.smoke else args.cases
    upstream = FakeUpstream()
    upstream.start()
    results: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "chatgate.yaml"
            config.write_text(
                "models:\n  - name: sleep-0.05-echo\n    provider: openai_compat\n"
                f"    base_url: {upstream.base_url}\n"
            )
            server = Server(config=config)
            try:
                for concurrency in (1, 8, 32):
                    results[concurrency] = throughput(Path(tmp), server, cases, concurrency)
            finally:
                server.stop()
    finally:
        upstream.stop()
    base = results[1]
    rows: list[list[Any]] = [
        [str(c), f"{rate:.1f}", f"{rate / base:.1f}x"] for c, rate in results.items()
    ]
    table = f"Eval throughput, {cases} cases, upstream answers after 50 ms\n\n" + markdown_table(
        ["concurrency", "cases/s", "vs concurrency 1"], rows
    )
    print(table)
    if not args.smoke:
        write_results("evals", {"machine": machine(), "cases_per_second": results}, table)


if __name__ == "__main__":
    main()
