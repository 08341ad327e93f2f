"""Load generators for the benchmarks.

- ``open_loop``: requests started on a fixed schedule (``rate`` per second) whatever the server
  does (each in its own task, up to 512 connections), so a server that falls behind is charged
  for the queue it causes instead of slowing the generator down (no coordinated omission).
  Latency runs from the moment a request is sent to the end of its body. aiohttp on uvloop.
- ``saturate``: wrk (Debian's ``wrk``) with many connections for the highest rate a server
  sustains; without wrk, a closed-loop aiohttp client does the same job, slower.

Each runs in its own process (``python -m bench.load ...``) so the caller can pin it to a CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import percentile

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None  # type: ignore[assignment]

CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]}


@dataclass
class LoadResult:
    tool: str
    rate: float
    """Requests per second asked for (0 for saturation)."""
    achieved: float
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 1.0


def _summary(
    tool: str, rate: float, latencies: list[float], errors: int, wall: float
) -> LoadResult:
    count = len(latencies) + errors
    return LoadResult(
        tool=tool,
        rate=rate,
        achieved=count / wall if wall else 0.0,
        count=count,
        errors=errors,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=max(latencies, default=float("nan")) * 1000,
    )


async def open_loop(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    rate: float,
    duration: float,
    *,
    warmup: float = 1.0,
    unique: bool = False,
) -> LoadResult:
    """``rate`` requests/s for ``warmup + duration`` seconds; the warm-up isn't counted.
    ``unique`` makes every request's body different (a number in the last message)."""
    payload = json.dumps(body).encode()
    marker = b'"content": "'
    all_headers = {"content-type": "application/json", **headers}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=512, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(counted: bool, number: int) -> None:
            nonlocal errors
            data = payload.replace(marker, marker + b"%d " % number) if unique else payload
            sent = time.perf_counter()
            try:
                async with session.post(url, data=data, headers=all_headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if counted:
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        total = int((warmup + duration) * rate)
        skip = int(warmup * rate)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i >= skip, i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        wall = time.perf_counter() - (start + warmup)
    return _summary("open-loop aiohttp", rate, latencies, errors, wall)


async def closed_loop(
    url: str, body: dict[str, Any], headers: dict[str, str], connections: int, duration: float
) -> LoadResult:
    payload = json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **headers}
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=payload, headers=all_headers) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
    return _summary("closed-loop aiohttp", 0, latencies, errors, time.perf_counter() - started)


_WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
{headers}
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str | None) -> float:
    """wrk's "812.00us" / "3.10ms" / "1.02s" / "2.00m" in milliseconds (NaN if absent)."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    if found is None:
        return float("nan")
    return float(found.group(1)) * _UNITS[found.group(2)]


def wrk(
    url: str, body: dict[str, Any], headers: dict[str, str], connections: int, duration: float
) -> LoadResult:
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    script = _WRK_LUA.format(body=json.dumps(json.dumps(body)), headers="\n".join(lines))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--latency",
                "--timeout",
                "30s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    count = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in found.groups())
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", output, re.M))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return LoadResult(
        tool="wrk",
        rate=0,
        achieved=rate,
        count=count,
        errors=errors,
        p50_ms=_wrk_ms(latency.get("50")),
        p95_ms=float("nan"),  # wrk prints 50/75/90/99
        p99_ms=_wrk_ms(latency.get("99")),
        max_ms=_wrk_ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
    )


def run_in_process(argv: list[str], cpu: int | None) -> LoadResult:
    """Runs this module as a child process (pinned to ``cpu`` where taskset exists)."""
    command = [sys.executable, "-m", "bench.load", *argv]
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return LoadResult(**json.loads(output))


def main() -> None:
    parser = argparse.ArgumentParser(description="load generator for bench/")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=0, help="requests/s; 0 = saturate")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--model", default=CHAT_BODY["model"])
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--unique", action="store_true", help="a different body each request")
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    args = parser.parse_args()
    body = {**CHAT_BODY, "model": args.model, **({"stream": True} if args.stream else {})}
    headers = dict(h.split(": ", 1) for h in args.header)
    run = uvloop.run if uvloop is not None else asyncio.run
    if args.rate:
        result = run(
            open_loop(
                args.url,
                body,
                headers,
                args.rate,
                args.duration,
                warmup=args.warmup,
                unique=args.unique,
            )
        )
    elif shutil.which("wrk"):
        if args.warmup > 0:
            wrk(args.url, body, headers, args.connections, args.warmup)
        result = wrk(args.url, body, headers, args.connections, args.duration)
    else:
        result = run(closed_loop(args.url, body, headers, args.connections, args.duration))
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
