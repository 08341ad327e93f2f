"""The benchmark runner: ``python -m bench <name> [options]``.

Each benchmark prints a markdown table with ratios against a baseline measured in the same
run, and (full runs) writes ``bench/results/<name>.md`` and ``.json`` with machine facts and
versions. ``python -m bench <name> --help`` lists a benchmark's options; ``--smoke`` runs a
quick check that it works (what CI runs).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "overhead": "gateway overhead vs direct calls and vs LiteLLM proxy (fixed rates, saturation)",
    "stages": "added latency of each pipeline stage (keys, limits, logging, cache), one at a time",
    "embedded": "embedded model through chatgate vs llama-cpp-python, 1/4/8 concurrent streams",
    "faults": "client success rate while the upstream fails 20% of requests, each fault kind",
    "soak": "a steady rate for minutes: memory growth after warm-up and errors (on demand)",
    "limits": "cost and accuracy of rate limiting (memory, Redis, 3 replicas)",
    "cache_tokens": "cache hits, token counting, budget reservations",
    "observability": "request log cost and sustained write rate",
    "stream_local": "embedded model streaming, 1 stream (see also: embedded)",
    "guards": "guard latency (PII + moderation on 1 kB), moderation precision and recall",
    "evals": "eval harness throughput through chatgate, concurrency 1 vs 8 vs 32",
    "batches": "a 2,000-line batch's wall time, and interactive p99 while it runs vs without",
    "retrieval": "nDCG/recall of vector, keyword and hybrid search; ingestion and search at scale",
    "footprint": "the embedded default's memory, start-up time and install size (README table)",
}


def usage() -> str:
    width = max(map(len, BENCHMARKS))
    lines = [__doc__ or "", "benchmarks:"]
    lines += [f"  {name.ljust(width)}  {about}" for name, about in BENCHMARKS.items()]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(usage())
        sys.exit(0 if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help") else 2)
    name = sys.argv[1]
    module = importlib.import_module(f"bench.{name}")
    sys.argv = [f"python -m bench {name}", *sys.argv[2:]]
    module.main()


if __name__ == "__main__":
    main()
