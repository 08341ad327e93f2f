"""The embedded default's footprint: what a new user who leaves ``chatgate serve`` running pays.

With the default configuration (both default models loaded), on this machine:

- ``chatgate --help``, against a bare ``python -c pass`` measured in the same run (the floor);
- ``chatgate serve`` until ``/health`` answers 200 (the converted model already cached);
- resident memory of the whole process tree (supervisor and worker) when idle, while 8
  conversations of ~2,000 tokens stream at once, and after one 8,000-token prompt is answered;
- the size on disk of README command 1's virtual environment (the runtime lock's packages).

Targets (issue 25) are printed beside each figure. ``--readme`` writes the table into the
README's performance section.

    python -m bench footprint            # full run
    python -m bench footprint --smoke    # a quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import Server, machine, markdown_table, write_results

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m-instruct"
START, END = "<!-- footprint:start -->", "<!-- footprint:end -->"


def _seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _runtime_mib() -> float:
    """The installed size of README command 1's packages (the runtime lock, and chatgate)."""
    names = re.findall(r"^([A-Za-z0-9_.-]+)==", (ROOT / "requirements.lock").read_text(), re.M)
    total = 0
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        for file in files:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


async def _stream(session: aiohttp.ClientSession, url: str, words: int, tokens: int) -> None:
    history = [
        {"role": "user", "content": "Tell me about the sea. " + "waves and tides " * words},
        {"role": "assistant", "content": "The sea is vast. " * 20},
        {"role": "user", "content": "Go on, at length."},
    ]
    body = {"model": MODEL, "messages": history, "max_tokens": tokens, "stream": True}
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for _ in response.content:
            pass


async def _under_load(server: Server, streams: int, words: int, tokens: int) -> float:
    """Peak tree RSS (MiB, sampled) while ``streams`` conversations stream at once."""
    peak = server.rss_mib()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
        tasks = [
            asyncio.create_task(_stream(session, server.url, words, tokens)) for _ in range(streams)
        ]
        while not all(task.done() for task in tasks):
            peak = max(peak, server.rss_mib())
            await asyncio.sleep(0.2)  # sampling memory while the streams run
        for task in tasks:
            task.result()
    return peak


async def _long_prompt(server: Server, repeats: int) -> int:
    """The prompt tokens of one long prompt's answer (0: it was refused)."""
    text = "Summarise: " + "the cat sat on the mat. " * repeats
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session,
        session.post(f"{server.url}/v1/chat/completions", json=body) as response,
    ):
        if response.status != 200:
            return 0
        return int((await response.json())["usage"]["prompt_tokens"])


def run(smoke: bool) -> dict[str, Any]:
    runs = 1 if smoke else 5
    python_s = _seconds([sys.executable, "-c", "pass"], runs)
    help_s = _seconds([sys.executable, "-m", "chatgate", "--help"], runs)
    started = time.perf_counter()
    server = Server()
    healthy_s = time.perf_counter() - started
    try:
        asyncio.run(_warm(server))
        time.sleep(1 if smoke else 5)  # idle: nothing in flight
        idle = server.rss_mib()
        streams, words, tokens = (2, 50, 8) if smoke else (8, 520, 200)
        loaded = asyncio.run(_under_load(server, streams, words, tokens))
        long_prompt = asyncio.run(_long_prompt(server, 200 if smoke else 1140))
        after = server.rss_mib()
    finally:
        server.stop()
    return {
        "python_s": python_s,
        "help_s": help_s,
        "healthy_s": healthy_s,
        "idle_mib": idle,
        "streams": streams,
        "streaming_mib": loaded,
        "long_prompt_tokens": long_prompt,
        "after_mib": after,
        "venv_mib": _runtime_mib(),
    }


async def _warm(server: Server) -> None:
    """One embeddings call: the encoder (loading in the background since start) is in memory."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "warm"}
        ) as response,
    ):
        response.raise_for_status()


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            "`chatgate --help`",
            f"{result['help_s']:.2f} s ({result['help_s'] / result['python_s']:.1f}x bare python)",
            "≤ 0.5 s",
        ],
        ["`chatgate serve` to healthy", f"{result['healthy_s']:.1f} s", "≤ 3 s"],
        ["RSS idle (supervisor + worker)", f"{result['idle_mib']:.0f} MiB", "≤ 450 MB"],
        [
            f"RSS, {result['streams']} conversations streaming",
            f"{result['streaming_mib']:.0f} MiB",
            "≤ 700 MB",
        ],
        [
            "a long prompt answered",
            f"{result['long_prompt_tokens']:,} tokens" if result["long_prompt_tokens"] else "no",
            "8,000 tokens",
        ],
        ["RSS after it", f"{result['after_mib']:.0f} MiB", ""],
        ["runtime packages on disk", f"{result['venv_mib']:.0f} MiB", "≤ 600 MB"],
    ]
    return markdown_table(["", "measured", "target"], rows)


def _into_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    if START not in content:
        raise SystemExit(f"README.md has no {START} marker")
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench footprint", description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    result = run(args.smoke)
    text = table(result)
    print(text)
    if not args.smoke:
        write_results("footprint", {"machine": machine(), **result}, text)
        if args.readme:
            _into_readme(text)


if __name__ == "__main__":
    main()
