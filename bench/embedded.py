"""The embedded model under concurrency: N streams asked for at once (N = 1, 4, 8), through
chatgate vs llama-cpp-python in-process, same threads, context and greedy decoding.

The in-process baseline is the model as chatgate served it before continuous batching: the
shipped Q4_1 file, one sequence at a time (llama-cpp-python's ``Llama`` generates one at a time,
so it serves the N requests one after another). chatgate decodes them together in one batch,
from the Q8_0 copy of the weights with fused attention. Reported: aggregate tokens/s over all N
streams, and the median and worst time to first token counted from the moment all N were asked
for; then the targets: chatgate at the largest N ≥ 2.5x its own one stream, one stream ≥ 0.95x
the in-process baseline, median time to first token at 8 streams < 500 ms.

    python -m bench embedded [--tokens 200] [--streams 1 4 8]
    python -m bench embedded --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from bench._common import Server, machine, markdown_table, write_results
from bench.stream_local import MODEL, THREADS, chatgate_run, direct_run, load_model
from chatgate.providers.local import default_model_path
from chatgate.providers.local.engine import Engine
from chatgate.providers.local.weights import default_cache_dir, requantized


def direct(llama: Llama, streams: int, tokens: int, offset: int) -> dict[str, float]:
    started = time.perf_counter()
    ttfts = []
    for i in range(streams):
        before = time.perf_counter() - started
        ttft, _ = direct_run(llama, offset + i, tokens)
        ttfts.append(before + ttft)
    wall = time.perf_counter() - started
    return _summary(streams, tokens, wall, ttfts)


async def through(url: str, streams: int, tokens: int, offset: int) -> dict[str, float]:
    started = time.perf_counter()
    runs = await asyncio.gather(*(_timed(url, offset + i, tokens, started) for i in range(streams)))
    wall = time.perf_counter() - started
    return _summary(streams, tokens, wall, list(runs))


async def _timed(url: str, run: int, tokens: int, started: float) -> float:
    asked = time.perf_counter()
    ttft, _ = await chatgate_run(url, run, tokens)
    return asked - started + ttft


def _summary(streams: int, tokens: int, wall: float, ttfts: list[float]) -> dict[str, float]:
    return {
        "tokens_per_s": streams * tokens / wall,
        "ttft_median_ms": statistics.median(ttfts) * 1000,
        "ttft_max_ms": max(ttfts) * 1000,
        "wall_s": wall,
    }


def decode_ceiling(path: Path, streams: int, *, context: int = 200, steps: int = 60) -> float:
    """llama.cpp alone, in the engine's own context (weights, threads, KV streams, attention):
    ``streams`` times one sequence's median decode step over the median step of ``streams``
    sequences at once, each ``context`` tokens in. Batching cannot beat this ratio."""
    engine = Engine(path, n_ctx=1024, n_threads=THREADS, n_batch=512, max_batch=streams)
    batch, positions = engine._batch.batch, [0] * streams  # the engine's internals, on purpose

    def decode(sequences: range, tokens: int) -> float:
        n = 0
        for seq in sequences:
            for _ in range(tokens):
                batch.token[n], batch.pos[n] = 100 + n % 500, positions[seq]
                batch.seq_id[n][0], batch.n_seq_id[n], batch.logits[n] = seq, 1, True
                positions[seq] += 1
                n += 1
        batch.n_tokens = n
        started = time.perf_counter()
        engine._ctx.decode(engine._batch)
        return time.perf_counter() - started

    for seq in range(streams):
        decode(range(seq, seq + 1), context)
    pairs = [(decode(range(1), 1), decode(range(streams), 1)) for _ in range(steps)]
    engine.close()  # one and many interleaved, so both meet the same machine
    return streams * statistics.median(p[0] for p in pairs) / statistics.median(p[1] for p in pairs)


def verdict(
    baseline: dict[int, dict[str, float]], ours: dict[int, dict[str, float]], streams: list[int]
) -> str:
    """The issue's targets, each a ratio measured in this run."""
    most = max(streams)
    lines = []
    if 1 in streams:
        scale = ours[most]["tokens_per_s"] / ours[1]["tokens_per_s"]
        alone = ours[1]["tokens_per_s"] / baseline[1]["tokens_per_s"]
        lines.append(f"{most} streams / 1 stream, aggregate tok/s: {scale:.2f}x (target >= 2.5x)")
        lines.append(f"1 stream, chatgate / in-process: {alone:.2f}x (target >= 0.95x)")
    if 8 in streams:
        median = ours[8]["ttft_median_ms"]
        lines.append(f"median time to first token, 8 streams: {median:.0f} ms (target < 500 ms)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench embedded", description=__doc__)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--weights",
        choices=["q8_0", "as_is"],
        default="q8_0",
        help="what chatgate serves: the Q8_0 copy (its default) or the shipped Q4_1 file",
    )
    args = parser.parse_args()
    if args.smoke:
        args.tokens, args.streams = 8, [1, 2]

    llama = load_model(as_served=False)
    direct_run(llama, -1, 8)  # warm-up
    baseline = {n: direct(llama, n, args.tokens, 100 * n) for n in args.streams}
    del llama

    model = {"name": MODEL, "provider": "local", "weights": args.weights}
    server = Server(env={"CHATGATE_MODELS": json.dumps([model])})
    try:
        asyncio.run(chatgate_run(server.url, -1, 8))  # warm-up
        ours = {
            n: asyncio.run(through(server.url, n, args.tokens, 1000 + 100 * n))
            for n in args.streams
        }
    finally:
        server.stop()

    rows = []
    for n in args.streams:
        d, c = baseline[n], ours[n]
        rows.append(
            [
                str(n),
                f"{d['tokens_per_s']:.1f}",
                f"{c['tokens_per_s']:.1f}",
                f"**{c['tokens_per_s'] / d['tokens_per_s']:.2f}x**",
                f"{d['ttft_median_ms']:.0f} / {d['ttft_max_ms']:.0f}",
                f"{c['ttft_median_ms']:.0f} / {c['ttft_max_ms']:.0f}",
            ]
        )
    header = ["streams", "direct tok/s", "chatgate tok/s", "chatgate / direct"]
    header += ["direct TTFT median / max ms", "chatgate TTFT median / max ms"]
    table = (
        f"Embedded model, {args.tokens} tokens per stream, N streams asked for at once "
        f"({THREADS} threads; chatgate serves weights {args.weights}).\n\n"
        + markdown_table(header, rows)
    )
    print(table)
    print(verdict(baseline, ours, args.streams))
    most = max(args.streams)
    served = default_model_path()
    if args.weights == "q8_0":
        served = requantized(served, "q8_0", default_cache_dir())
    ceiling = decode_ceiling(served, most)
    print(f"llama.cpp alone, {most} sequences per decode step / 1: at most {ceiling:.2f}x")
    if not args.smoke:
        payload: dict[str, Any] = {"machine": machine(), "tokens": args.tokens}
        payload["weights"], payload["decode_ceiling"] = args.weights, ceiling
        payload["direct"], payload["chatgate"] = baseline, ours
        write_results("embedded" if args.weights == "q8_0" else "embedded-as-is", payload, table)
