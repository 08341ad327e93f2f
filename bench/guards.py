"""Guard measurements, each against a baseline in the same run:

1. added latency per request: a 1 kB prompt (with an email and a card number in it) through
   chatgate with no guards vs with PII pseudonymisation + input and output moderation + the
   prompt-injection heuristics (the fake upstream answers; server-side time from
   ``Server-Timing``, rounds interleaved, medians) — target < 2 ms p50 added;
2. the same screening in process (PII + moderation + injection on 1 kB), per call;
3. the offline moderation rules' precision, recall and false-positive rate on the labelled sets
   in ``tests/data``: the development set the rules were written against, and a held-out set
   written after they were frozen.

    python -m bench guards            # full run
    python -m bench guards --smoke    # quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fake_upstream import FakeUpstream

from bench._common import Server, machine, markdown_table, percentile, timed_requests, write_results
from chatgate.guards.injection import InjectionDetector
from chatgate.guards.moderation import RuleModerator
from chatgate.guards.pii import PiiDetector, Pseudonyms
from chatgate.guards.verdict import MODERATION_CATEGORIES

DATA = Path(__file__).parent.parent / "tests" / "data"
PROMPT = (
    "Hello, I am writing about my order from last week. My email is jane.doe@example.com and "
    "I paid with card 4111 1111 1111 1111. The package arrived damaged: the box was crushed, "
    "two of the glasses inside were broken and the instructions were missing. "
) * 4
PROMPT = PROMPT[:1000]
STRICT = (
    "guards:\n  policies:\n    strict: {pii: pseudonymize, input_moderation: block, "
    "output_moderation: block, prompt_injection: block}\n  default_policy: strict\n"
)


def added_latency(
    directory: Path, upstream: FakeUpstream, count: int, rounds: int
) -> dict[str, Any]:
    models = (
        f"models:\n  - name: echo\n    provider: openai_compat\n    base_url: {upstream.base_url}\n"
    )
    configs = {"no guards": models, "PII + moderation + injection": STRICT + models}
    body = {"model": "echo", "messages": [{"role": "user", "content": PROMPT}], "temperature": 1}
    servers: dict[str, Server] = {}
    for name, text in configs.items():
        path = directory / f"{len(servers)}.yaml"
        path.write_text(text)
        servers[name] = Server(config=path)
    results: dict[str, dict[str, list[float]]] = {n: {"wall": [], "server": []} for n in configs}
    try:
        for server in servers.values():
            asyncio.run(timed_requests(server.url, body, 50, "unused"))  # warm up
        for _ in range(rounds):
            for name, server in servers.items():
                wall, side = asyncio.run(timed_requests(server.url, body, count, "unused"))
                results[name]["wall"] += wall
                results[name]["server"] += side
    finally:
        for server in servers.values():
            server.stop()
    return {
        name: {
            "server_p50_ms": statistics.median(r["server"]) * 1000,
            "server_p99_ms": percentile(r["server"], 0.99) * 1000,
            "wall_p50_ms": statistics.median(r["wall"]) * 1000,
            "wall_p99_ms": percentile(r["wall"], 0.99) * 1000,
        }
        for name, r in results.items()
    }


def in_process(repeats: int) -> dict[str, float]:
    detector, moderator, injection = PiiDetector(), RuleModerator(), InjectionDetector()
    timings: dict[str, list[float]] = {"pii": [], "moderation": [], "injection": []}
    for _ in range(repeats):
        started = time.perf_counter()
        Pseudonyms(detector).replace(PROMPT)
        timings["pii"].append(time.perf_counter() - started)
        started = time.perf_counter()
        moderator.classify(PROMPT)
        timings["moderation"].append(time.perf_counter() - started)
        started = time.perf_counter()
        injection.classify(PROMPT)
        timings["injection"].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e6 for name, values in timings.items()}


def moderation_quality(path: Path) -> dict[str, float]:
    moderator = RuleModerator()
    hits = wrong = missed = false_alarms = benign = flagged_harmful = harmful = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        got = set(moderator.classify(row["text"]).flagged_categories)
        want = set(row["categories"])
        hits, wrong, missed = (
            hits + len(got & want),
            wrong + len(got - want),
            missed + len(want - got),
        )
        if want:
            harmful += 1
            flagged_harmful += bool(got)
        else:
            benign += 1
            false_alarms += bool(got)
    return {
        "examples": benign + harmful,
        "precision": hits / max(hits + wrong, 1),
        "recall": hits / max(hits + missed, 1),
        "flagged_any_recall": flagged_harmful / max(harmful, 1),
        "false_positive_rate": false_alarms / max(benign, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    count, rounds = (20, 1) if args.smoke else (args.requests, args.rounds)
    upstream = FakeUpstream()
    upstream.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            latency = added_latency(Path(tmp), upstream, count, rounds)
    finally:
        upstream.stop()
    screening = in_process(200 if args.smoke else 5000)
    quality = {
        "development set (rules written against it)": moderation_quality(
            DATA / "moderation_labelled.jsonl"
        ),
        "held-out set (written after the rules were frozen)": moderation_quality(
            DATA / "moderation_heldout.jsonl"
        ),
    }
    base = latency["no guards"]
    rows = [
        [
            name,
            f"{r['server_p50_ms']:.3f} ms",
            f"{r['server_p99_ms']:.3f} ms",
            f"{r['wall_p50_ms']:.2f} ms",
            f"{r['server_p50_ms'] - base['server_p50_ms']:+.3f} ms",
            f"{r['wall_p50_ms'] - base['wall_p50_ms']:+.2f} ms",
        ]
        for name, r in latency.items()
    ]
    lines = [
        f"Guards, 1 kB prompt ({count} sequential requests x {rounds} interleaved rounds)",
        "",
        markdown_table(
            [
                "guards",
                "server p50",
                "server p99",
                "end-to-end p50",
                "added server p50",
                "added end-to-end p50",
            ],
            rows,
        ),
        "",
        markdown_table(
            ["in process, 1 kB", "p50"],
            [[name, f"{value:.1f} us"] for name, value in screening.items()],
        ),
        "",
        markdown_table(
            ["moderation rules", "examples", "precision", "recall", "any-flag recall", "FPR"],
            [
                [
                    name,
                    str(q["examples"]),
                    f"{q['precision']:.2f}",
                    f"{q['recall']:.2f}",
                    f"{q['flagged_any_recall']:.2f}",
                    f"{q['false_positive_rate']:.2f}",
                ]
                for name, q in quality.items()
            ],
        ),
        f"(per-category precision and recall over {len(MODERATION_CATEGORIES)} categories)",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.smoke:
        write_results(
            "guards",
            {"machine": machine(), "latency": latency, "in_process_us": screening,
             "moderation": quality},
            table,
        )  # fmt: skip


if __name__ == "__main__":
    main()
