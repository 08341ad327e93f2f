"""What each pipeline stage adds, one at a time, at a fixed rate (default 500 requests/s).

Same set-up as ``bench overhead`` (gateway pinned to CPU 0 with one worker, fast fake upstream
and open-loop load generator on CPU 1, JSON answers at 0 ms upstream latency). Variants:

- bare: open mode (no keys), request log off, no limits — the proxy path alone
- keys: a virtual key checked on every request (master key set)
- limits (memory) / limits (Redis): a global and a per-key rpm/tpm/concurrency limit
- request log: one record per request written in batches (on by default in chatgate)
- cache miss / cache hit: ``x-chatgate-cache: use`` with a different / the same body each time
- production: keys + limits (memory) + request log — the configuration the target is for
- production, Redis: keys + limits (Redis) + request log

Added latency is against the upstream called directly at the same rate in the same run.
Target (issue 7): production p99 added <= 2 ms at 500 requests/s.

    python -m bench stages [--rate 500] [--duration 10]
    python -m bench stages --smoke
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench._common import MASTER, Server, machine, markdown_table, virtual_key, write_results
from bench.load import LoadResult
from bench.overhead import SERVER_CPU, chatgate_config, load, model_name, start_upstreams

REDIS = "redis://127.0.0.1:6379/0"
BIG = "{rpm: 100000000, tpm: 10000000000, concurrent: 100000}"


@dataclass(frozen=True)
class Variant:
    name: str
    keys: bool = False
    limits: str | None = None  # "memory" | "redis"
    request_log: bool = False
    cache: str | None = None  # "miss" | "hit"


VARIANTS = [
    Variant("bare"),
    Variant("keys", keys=True),
    Variant("limits (memory)", limits="memory"),
    Variant("limits (Redis)", limits="redis"),
    Variant("request log", request_log=True),
    Variant("cache miss", cache="miss"),
    Variant("cache hit", cache="hit"),
    Variant("production", keys=True, limits="memory", request_log=True),
    Variant("production, Redis", keys=True, limits="redis", request_log=True),
]


def _extra(variant: Variant) -> str:
    lines = [f"observability: {{request_log: {str(variant.request_log).lower()}}}"]
    if variant.limits:
        lines.append("limits:")
        if variant.limits == "redis":
            lines += [
                "  backend: redis",
                f"  redis_url: {REDIS}",
                f"  redis_prefix: bench-{secrets.token_hex(4)}",
            ]
        lines.append(f"  global: {BIG}")
    return "\n".join(lines)


def run_variant(
    directory: Path, upstreams: dict[int, Any], variant: Variant, rate: float, duration: float
) -> LoadResult:
    workdir = directory / variant.name.replace(" ", "-").replace(",", "").replace("(", "")
    workdir.mkdir()
    config = chatgate_config(workdir, upstreams, _extra(variant))
    env = {"CHATGATE_MASTER_KEY": MASTER} if variant.keys else {}
    server = Server(config=config, env=env, cpu=SERVER_CPU)
    try:
        headers = {}
        if variant.keys:
            headers["authorization"] = (
                f"Bearer {virtual_key(server.url, limits=bool(variant.limits))}"
            )
        if variant.cache:
            headers["x-chatgate-cache"] = "use"
        return load(
            server.url,
            model_name(0),
            stream=False,
            rate=rate,
            duration=duration,
            headers=headers,
            unique=variant.cache != "hit",
        )
    finally:
        server.stop()


def median_result(samples: list[LoadResult]) -> LoadResult:
    """Per-figure medians over rounds (counts and errors summed)."""
    return LoadResult(
        tool=samples[0].tool,
        rate=samples[0].rate,
        achieved=statistics.median(r.achieved for r in samples),
        count=sum(r.count for r in samples),
        errors=sum(r.errors for r in samples),
        p50_ms=statistics.median(r.p50_ms for r in samples),
        p95_ms=statistics.median(r.p95_ms for r in samples),
        p99_ms=statistics.median(r.p99_ms for r in samples),
        max_ms=max(r.max_ms for r in samples),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench stages", description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--only", nargs="*", help="variant names to run (bare always runs)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    variants = VARIANTS
    if args.only:
        variants = [v for v in VARIANTS if v.name == "bare" or v.name in args.only]
    if args.smoke:
        args.rate, args.duration, args.repeat = 100, 1, 1
        variants = [VARIANTS[0], VARIANTS[-2]]

    runs: dict[str, list[LoadResult]] = {"direct": []}
    with tempfile.TemporaryDirectory() as tmp:
        upstreams = start_upstreams({0})
        try:
            # Rounds interleave the variants so slow drifts of the machine hit them all alike;
            # each figure is the median over rounds.
            for round_ in range(args.repeat):
                runs["direct"].append(
                    load(
                        upstreams[0].url,
                        "direct",
                        stream=False,
                        rate=args.rate,
                        duration=args.duration,
                    )
                )
                for variant in variants:
                    workdir = Path(tmp) / f"round-{round_}"
                    workdir.mkdir(exist_ok=True)
                    result = run_variant(workdir, upstreams, variant, args.rate, args.duration)
                    runs.setdefault(variant.name, []).append(result)
                    print(f"round {round_ + 1}, {variant.name}: {result}", flush=True)
        finally:
            for upstream in upstreams.values():
                upstream.stop()

    direct = median_result(runs.pop("direct"))
    results = {name: median_result(samples) for name, samples in runs.items()}
    bare = results["bare"]
    rows = [
        [
            "upstream direct (absolute)",
            f"{direct.p50_ms:.2f}",
            f"{direct.p95_ms:.2f}",
            f"{direct.p99_ms:.2f}",
            "",
            f"{direct.error_rate:.2%}",
        ]
    ]
    for name, result in results.items():
        rows.append(
            [
                name,
                f"{result.p50_ms - direct.p50_ms:+.2f}",
                f"{result.p95_ms - direct.p95_ms:+.2f}",
                f"{result.p99_ms - direct.p99_ms:+.2f}",
                f"{result.p50_ms - bare.p50_ms:+.2f} / {result.p99_ms - bare.p99_ms:+.2f}",
                f"{result.error_rate:.2%}",
            ]
        )
    header = ["variant", "added p50 ms", "added p95 ms", "added p99 ms"]
    header += ["vs bare p50 / p99 ms", "errors"]
    table = (
        f"Pipeline stages one at a time, {args.rate:g} requests/s for {args.duration:g} s "
        f"(open loop), median of {args.repeat} interleaved rounds, JSON, upstream latency "
        "0 ms; added = chatgate minus the upstream called directly.\n\n"
        + markdown_table(header, rows)
    )
    prod = results.get("production")
    if prod is not None:
        added = prod.p99_ms - direct.p99_ms
        verdict = "met" if added <= 2 and prod.error_rate < 0.001 else "NOT met"
        table += f"\n\nTarget: production p99 added <= 2 ms at {args.rate:g} rps: **{verdict}**"
        table += f" ({added:+.2f} ms)."
    print(table)
    if args.smoke:
        assert all(r.error_rate == 0 for r in results.values()), "errors in the smoke run"
        return
    write_results(
        "stages",
        {
            "machine": machine(),
            "rate": args.rate,
            "duration_s": args.duration,
            "repeat": args.repeat,
            "direct": asdict(direct),
            "variants": {name: asdict(result) for name, result in results.items()},
            "rounds": {name: [asdict(r) for r in samples] for name, samples in runs.items()},
        },
        table,
    )
