"""The fault run at scale: the upstream fails 20% of requests — each kind in turn (429, 500,
connection reset, timeout, mid-body drop), then all five mixed — and chatgate, with retries and
a fallback deployment, answers the clients. Prints the client success rate per kind for JSON
and streamed requests, against the same run with retries and fallbacks off (the baseline).

A stream cut after content reached the client can't be hidden (no second answer can be spliced
onto the first): such streams end with an SSE error event, counted separately.

    python -m bench faults [--requests 1000]
    python -m bench faults --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from tests.fake_upstream import FakeUpstream, chaos_config

from bench._common import Server, machine, markdown_table, write_results

KINDS = ["429", "500", "reset", "timeout", "drop"]
CONCURRENCY = 20


async def _one(session: aiohttp.ClientSession, url: str, i: int, stream: bool) -> str:
    """'ok', 'error' (an HTTP error or an SSE error event) or 'wrong' (truncated, silently)."""
    text = f"request {i} of the fault run"
    body: dict[str, Any] = {"model": "chaos-primary", "stream": stream}
    body["messages"] = [{"role": "user", "content": text}]
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            if response.status != 200:
                return "error"
            if not stream:
                answer = await response.json()
                got = answer["choices"][0]["message"]["content"]
            else:
                pieces = []
                async for line in response.content:
                    if not line.startswith(b"data: {"):
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        return "error"
                    for choice in event.get("choices", []):
                        pieces.append(choice["delta"].get("content") or "")
                got = "".join(pieces)
    except aiohttp.ClientError:
        return "error"
    return "ok" if got == text else "wrong"


async def _run(url: str, requests: int, stream: bool) -> dict[str, int]:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession() as session:

        async def limited(i: int) -> str:
            async with gate:
                return await _one(session, url, i, stream)

        outcomes = await asyncio.gather(*(limited(i) for i in range(requests)))
    return {k: outcomes.count(k) for k in ("ok", "error", "wrong")}


def _config(base_url: str, resilient: bool) -> str:
    config = chaos_config(base_url)
    if not resilient:  # a plain proxy: no retries, no fallback, no circuit breaker
        config = config.replace("retries: 4", "retries: 0").replace(
            "    fallbacks: [chaos-secondary]\n", ""
        )
        config = config.replace("breaker_failures: 10", "breaker_failures: 1000000")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per kind, JSON and streamed")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    kinds = [*KINDS, "mixed"]
    if args.smoke:
        args.requests, kinds = 40, ["500", "drop"]

    rows = []
    results: dict[str, Any] = {}
    fake = FakeUpstream(stall=5.0)
    fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for resilient in (False, True):
                path = Path(tmp) / f"chatgate-{resilient}.yaml"
                path.write_text(_config(fake.base_url, resilient))
                server = Server(config=path)
                try:
                    for kind in kinds:
                        fake.faults = (
                            {k: 0.2 / len(KINDS) for k in KINDS} if kind == "mixed" else {kind: 0.2}
                        )
                        json_run = asyncio.run(_run(server.url, args.requests, stream=False))
                        stream_run = asyncio.run(_run(server.url, args.requests, stream=True))
                        results[f"{kind} resilient={resilient}"] = {
                            "json": json_run,
                            "stream": stream_run,
                        }
                        rows.append(
                            [
                                kind,
                                "on" if resilient else "off (baseline)",
                                f"{json_run['ok'] / args.requests:.2%}",
                                f"{stream_run['ok'] / args.requests:.2%}",
                                f"{stream_run['error']} / {stream_run['wrong']}",
                            ]
                        )
                finally:
                    server.stop()
    finally:
        fake.stop()
    header = ["fault (20%)", "retries, fallback, breaker", "JSON ok", "streams ok"]
    header.append("stream errors / silent truncations")
    table = (
        f"Fault run: {args.requests} JSON + {args.requests} streamed requests per row, "
        f"{CONCURRENCY} at a time, fake upstream failing 20% of attempts.\n\n"
        + markdown_table(header, rows)
    )
    print(table)
    silent = sum(r["stream"]["wrong"] + r["json"]["wrong"] for r in results.values())
    assert silent == 0, "a client got a truncated answer as if complete"
    if not args.smoke:
        write_results(
            "faults", {"machine": machine(), "requests": args.requests, "runs": results}, table
        )
