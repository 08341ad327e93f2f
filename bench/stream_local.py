"""Embedded-model streaming through chatgate vs llama-cpp-python called in-process.

Same weights (the embedded model's Q8_0 copy), same threads and context size, greedy decoding of
the same number of tokens (end-of-turn suppressed so both produce exactly N). Each run uses a
fresh prompt so neither side benefits from a KV-cache prefix hit. Prints tokens/s and time to
first token for both, and the ratios; targets: chatgate >= 0.85x the direct tokens/s, TTFT
overhead < 20 ms.

    python -m bench.stream_local            # 256 tokens, 5 runs
    python -m bench.stream_local --smoke    # a quick CI check that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import aiohttp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from bench._common import Server, machine, median, write_results
from chatgate.providers.local import default_model_path
from chatgate.providers.local.cpu import load_llama
from chatgate.providers.local.weights import default_cache_dir, requantized

N_CTX = 8192
THREADS = os.cpu_count() or 1
MODEL = "smollm2-135m-instruct"


def prompt(run: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"Story number {run}: write a long tale about a lighthouse."}
    ]


def load_model(*, as_served: bool = True) -> Llama:
    """The embedded model in process: as chatgate serves it (its Q8_0 copy, fused attention),
    or, with ``as_served=False``, as chatgate served it before issue 16 (the shipped Q4_1 file,
    llama.cpp's default attention)."""
    path = default_model_path()
    if as_served:
        path = requantized(path, "q8_0", default_cache_dir())
    return load_llama(
        path,
        n_ctx=N_CTX,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        flash_attn=as_served,
        verbose=False,
    )


def direct_run(llama: Llama, run: int, tokens: int) -> tuple[float, float]:
    """(seconds to first token, tokens/s after it) for llama-cpp-python's own generate()."""
    text = llama.metadata["tokenizer.chat_template"]
    formatter = Jinja2ChatFormatter(text, eos_token="<|im_end|>", bos_token="<|im_start|>")
    rendered = formatter(messages=prompt(run)).prompt  # type: ignore[arg-type]
    ids = llama.tokenize(rendered.encode(), add_bos=False, special=True)
    started = time.perf_counter()
    first = 0.0
    count = 0
    for _token in llama.generate(ids, temp=0.0, reset=True):
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count == tokens:
            break
    end = time.perf_counter()
    return first - started, (count - 1) / (end - first)


async def chatgate_run(url: str, run: int, tokens: int) -> tuple[float, float]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": prompt(run),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {"2": -100},
    }
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        first = 0.0
        count = 0
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            async for line in response.content:
                if line.startswith(b'data: {"id"') and b'"content":"' in line:
                    if b'"content":""' in line and b'"role"' in line:
                        continue
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
        end = time.perf_counter()
    return first - started, (count - 1) / (end - first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.tokens, args.runs = 16, 1

    llama = load_model()
    direct_run(llama, -1, 8)  # warm-up
    direct = [direct_run(llama, run, args.tokens) for run in range(args.runs)]
    del llama

    server = Server()
    try:
        asyncio.run(chatgate_run(server.url, -1, 8))  # warm-up
        through = [
            asyncio.run(chatgate_run(server.url, run, args.tokens)) for run in range(args.runs)
        ]
    finally:
        server.stop()

    d_ttft, d_tps = median([r[0] for r in direct]), median([r[1] for r in direct])
    c_ttft, c_tps = median([r[0] for r in through]), median([r[1] for r in through])
    ratio = c_tps / d_tps
    overhead_ms = (c_ttft - d_ttft) * 1000
    table = "\n".join(
        [
            f"Embedded model, {args.tokens} tokens streamed, median of {args.runs} runs",
            "",
            "| | tokens/s | time to first token |",
            "|---|---|---|",
            f"| llama-cpp-python in-process | {d_tps:.1f} | {d_ttft * 1000:.1f} ms |",
            f"| through chatgate (HTTP + SSE) | {c_tps:.1f} | {c_ttft * 1000:.1f} ms |",
            f"| chatgate / direct | **{ratio:.2f}x** | **{overhead_ms:+.1f} ms** |",
        ]
    )
    print(table)
    verdict = "met" if ratio >= 0.85 and overhead_ms < 20 else "NOT met"
    print(f"\ntargets (>= 0.85x tokens/s, < 20 ms TTFT overhead): {verdict}")
    if not args.smoke:
        write_results(
            "stream_local",
            {
                "machine": machine(),
                "tokens": args.tokens,
                "runs": args.runs,
                "direct": {"tokens_per_s": d_tps, "ttft_s": d_ttft, "samples": direct},
                "chatgate": {"tokens_per_s": c_tps, "ttft_s": c_ttft, "samples": through},
                "ratio_tokens_per_s": ratio,
                "ttft_overhead_ms": overhead_ms,
            },
            table,
        )


if __name__ == "__main__":
    main()
