"""Soak (on demand, not CI): chatgate in its production configuration (virtual key, memory
limits, request log) at a steady open-loop rate for minutes. Samples the process tree's RSS
after every segment; passes when RSS grows < 10% after the first minute (warm-up) and no
request failed.

    python -m bench soak [--minutes 10] [--rate 300]
    python -m bench soak --smoke
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench._common import MASTER, Server, machine, markdown_table, virtual_key, write_results
from bench.overhead import SERVER_CPU, chatgate_config, load, model_name, start_upstreams
from bench.stages import VARIANTS, _extra


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--segment", type=float, default=30, help="seconds per sample")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.rate, args.segment = 0.1, 100, 3

    production = next(v for v in VARIANTS if v.name == "production")
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        upstreams = start_upstreams({0})
        config = chatgate_config(Path(tmp), upstreams, _extra(production))
        server = Server(config=config, env={"CHATGATE_MASTER_KEY": MASTER}, cpu=SERVER_CPU)
        try:
            headers = {"authorization": f"Bearer {virtual_key(server.url, limits=True)}"}
            elapsed = 0.0
            while elapsed < args.minutes * 60:
                result = load(
                    server.url,
                    model_name(0),
                    stream=False,
                    rate=args.rate,
                    duration=args.segment,
                    headers=headers,
                    unique=True,
                )
                elapsed += args.segment
                sample = {
                    "at_s": elapsed,
                    "rss_mib": server.rss_mib(),
                    "requests": result.count,
                    "errors": result.errors,
                    "p99_ms": result.p99_ms,
                }
                samples.append(sample)
                print(sample, flush=True)
        finally:
            server.stop()
            for upstream in upstreams.values():
                upstream.stop()

    warm = next((s for s in samples if s["at_s"] >= 60), samples[0])
    last = samples[-1]
    growth = last["rss_mib"] / warm["rss_mib"] - 1
    errors = sum(s["errors"] for s in samples)
    total = sum(s["requests"] for s in samples)
    rows = [
        [
            f"{args.minutes:g} min at {args.rate:g} rps",
            f"{total:,}",
            str(errors),
            f"{warm['rss_mib']:.0f}",
            f"{last['rss_mib']:.0f}",
            f"**{growth:+.1%}**",
            f"{max(s['p99_ms'] for s in samples):.2f}",
        ]
    ]
    header = ["run", "requests", "errors", "RSS after warm-up MiB", "RSS at end MiB"]
    header += ["growth", "worst segment p99 ms"]
    table = markdown_table(header, rows)
    verdict = "met" if growth < 0.10 and errors == 0 else "NOT met"
    table += f"\n\nTarget (< 10% RSS growth after warm-up, zero errors): **{verdict}**"
    print(table)
    if not args.smoke:
        write_results("soak", {"machine": machine(), "samples": samples}, table)
    else:
        assert errors == 0, "errors in the soak smoke"
