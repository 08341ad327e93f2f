"""Retrieval quality and scale: the labelled corpus in ``bench/data/retrieval`` searched by
vector, keyword and hybrid (reciprocal rank fusion) — nDCG@10, recall@5/10, MRR, overall and per
query kind, with hybrid's ratio to each alone — then storage ingestion (chunks/s) and search p50
at 10k and 100k chunks on SQLite and, given ``--postgres``, PostgreSQL; and the embedded
encoder's throughput on 800-token chunks (what bounds real ingestion).

The quality half runs the real pieces in process: the embedded all-MiniLM-L6-v2, the chunk store
on a fresh SQLite database, and the searcher the API uses. The scale half stores synthetic chunks
(random unit vectors, text drawn from a word list) so it measures storage and search, not the
encoder.

    python -m bench retrieval                      # quality + scale on SQLite
    python -m bench retrieval --postgres postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench retrieval --smoke              # CI: quality (hybrid >= keyword) + 2k chunks
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from bench._common import machine, markdown_table, percentile, write_results
from bench.ir_metrics import KINDS, Query, load_corpus, load_queries, mrr, ndcg_at_k, recall_at_k
from chatgate.config import LocalEmbeddingModelConfig
from chatgate.providers.embedding import BACKGROUND, LocalEmbeddingProvider
from chatgate.retrieval.chunking import chunk_text
from chatgate.retrieval.dense import DenseIndex, MemoryDense, PgvectorDense
from chatgate.retrieval.search import Searcher, SearchMode
from chatgate.state.db import Database
from chatgate.state.vector_stores import ChunkRecord, VectorStoreStore
from chatgate.tokenizers import encoding_for

MODES: tuple[SearchMode, ...] = ("vector", "keyword", "hybrid")
DIMS = 384


async def _store(db: Database) -> tuple[VectorStoreStore, str]:
    await db.upgrade()
    store = VectorStoreStore(db)
    store_id = await store.create(
        key_id=None,
        owner=None,
        name="bench",
        description=None,
        metadata=None,
        expires_after=None,
        embedding_model="all-minilm-l6-v2",
    )
    return store, store_id


async def _put(
    store: VectorStoreStore, store_id: str, files: Sequence[tuple[str, list[ChunkRecord]]]
) -> None:
    """Attach files and store their chunks through the ingestion path (claim, then finish)."""
    await store.add_files(store_id, [(f, f, {"type": "auto"}, None) for f, _ in files])
    owner = "bench-" + secrets.token_hex(4)
    by_id = dict(files)
    while True:
        claimed = await store.claim(owner, 600, 256)
        if not claimed:
            return
        for info in claimed:
            await store.finish(store_id, info.file_id, owner, chunks=by_id[info.file_id])


# -- quality ------------------------------------------------------------------------------


async def quality(provider: LocalEmbeddingProvider) -> dict[str, Any]:
    passages = load_corpus()
    queries = load_queries()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/q.db")
        store, store_id = await _store(db)
        texts = [f"{p.title}\n\n{p.text}" for p in passages]
        vectors = (await provider.embed(texts, windows=True, priority=BACKGROUND)).vectors
        files = [
            (p.id, [ChunkRecord(0, 0, len(t), 0, t, vectors[i].astype("<f4").tobytes())])
            for i, (p, t) in enumerate(zip(passages, texts, strict=True))
        ]
        await _put(store, store_id, files)

        async def embed(_model: str, qs: list[str]) -> tuple[np.ndarray, int]:
            embedded = await provider.embed(qs)
            return embedded.vectors, embedded.prompt_tokens

        searcher = Searcher(store, embed, MemoryDense(store, 1 << 30))
        scores: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
        for mode in MODES:
            for query in queries:
                hits = await searcher.search(
                    [(store_id, "all-minilm-l6-v2")], [query.text], limit=10, mode=mode
                )
                ranked = [h.file_id for h in hits]
                for name, value in _metrics(ranked, query).items():
                    scores[mode].setdefault(name, []).append(value)
                    scores[mode].setdefault(f"{name}:{query.kind}", []).append(value)
        await db.close()
    return {mode: {k: statistics.fmean(v) for k, v in s.items()} for mode, s in scores.items()}


def _metrics(ranked: list[str], query: Query) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at_k(ranked, query.relevant, 10),
        "recall@5": recall_at_k(ranked, query.relevant, 5),
        "recall@10": recall_at_k(ranked, query.relevant, 10),
        "mrr": mrr(ranked, query.relevant, 10),
    }


def quality_table(result: dict[str, dict[str, float]]) -> str:
    names = ["ndcg@10", "recall@5", "recall@10", "mrr"]
    rows = [[mode, *(f"{result[mode][n]:.3f}" for n in names)] for mode in MODES]
    rows.append(["hybrid / keyword", *(f"{_ratio(result, 'hybrid', 'keyword', n)}" for n in names)])
    rows.append(["hybrid / vector", *(f"{_ratio(result, 'hybrid', 'vector', n)}" for n in names)])
    kinds = [
        [mode, *(f"{result[mode][f'ndcg@10:{kind}']:.3f}" for kind in KINDS)] for mode in MODES
    ]
    corpus = f"{len(load_corpus())} passages, {len(load_queries())} labelled queries"
    return "\n".join(
        [
            f"Retrieval quality ({corpus}; embedded all-MiniLM-L6-v2, SQLite FTS5)",
            "",
            markdown_table(["mode", *names], rows),
            "",
            markdown_table(["nDCG@10 by query kind", *KINDS], kinds),
        ]
    )


def _ratio(result: dict[str, dict[str, float]], a: str, b: str, name: str) -> str:
    base = result[b][name]
    return f"{result[a][name] / base:.2f}x" if base else "-"


# -- scale --------------------------------------------------------------------------------


def _synthetic(
    count: int, per_file: int, rng: random.Random
) -> list[tuple[str, list[ChunkRecord]]]:
    vocabulary = [f"w{i}" for i in range(20_000)]
    cumulative = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(vocabulary))))
    generator = np.random.default_rng(rng.randrange(1 << 30))
    vectors = generator.standard_normal((count, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    files = []
    for start in range(0, count, per_file):
        records = []
        for i in range(start, min(count, start + per_file)):
            text = " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=120))  # Zipf-like
            records.append(ChunkRecord(i - start, 0, len(text), 120, text, vectors[i].tobytes()))
        files.append((f"file-{start}", records))
    return files


async def scale(url: str, count: int, queries: int) -> dict[str, Any]:
    rng = random.Random(count)
    files = _synthetic(count, 1000, rng)
    db = Database(url)
    try:
        store, store_id = await _store(db)
        started = time.perf_counter()
        await _put(store, store_id, files)
        ingest_s = time.perf_counter() - started
        generator = np.random.default_rng(7)

        async def embed(_model: str, qs: list[str]) -> tuple[np.ndarray, int]:
            v = generator.standard_normal((len(qs), DIMS)).astype(np.float32)
            result: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
            return result, 0

        dense: DenseIndex = MemoryDense(store, 1 << 30)
        if await store.enable_pgvector():
            dense = PgvectorDense(db)
        searcher = Searcher(store, embed, dense)
        target = [(store_id, "all-minilm-l6-v2")]
        started = time.perf_counter()
        await searcher.search(target, ["w1 w2"], limit=10)  # loads the vectors
        load_s = time.perf_counter() - started
        timings: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(queries):
            words = " ".join(f"w{rng.randrange(20, 2000)}" for _ in range(3))
            for mode in MODES:
                started = time.perf_counter()
                await searcher.search(target, [words], limit=10, mode=mode)
                timings[mode].append(time.perf_counter() - started)
    finally:
        await db.close()
    return {
        "dense": "pgvector" if isinstance(dense, PgvectorDense) else "memory",
        "chunks_per_s": count / ingest_s,
        "load_s": load_s,
        **{f"{m}_p50_ms": percentile(t, 0.5) * 1000 for m, t in timings.items()},
        **{f"{m}_p99_ms": percentile(t, 0.99) * 1000 for m, t in timings.items()},
    }


async def _postgres_database(admin: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    import asyncpg

    name = "chatgate_bench_" + secrets.token_hex(4)
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    parts = urlsplit(admin)
    query = f"?{parts.query}" if parts.query else ""

    async def drop() -> None:
        connection = await asyncpg.connect(admin)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()

    return f"postgresql+asyncpg://{parts.netloc}/{name}{query}", drop


async def encoder_throughput(provider: LocalEmbeddingProvider, chunks: int) -> float:
    text = " ".join(p.text for p in load_corpus()) * 3
    pieces = chunk_text(text, encoding_for("o200k_base"), 800, 400)[:chunks]
    started = time.perf_counter()
    await provider.embed([c.text for c in pieces], windows=True, priority=BACKGROUND)
    return len(pieces) / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    provider = LocalEmbeddingProvider(LocalEmbeddingModelConfig(name="all-minilm-l6-v2"))
    await provider.start()
    try:
        result = await quality(provider)
        encoder = await encoder_throughput(provider, 4 if args.smoke else 32)
    finally:
        await provider.close()
    # Fusion must not lose to keyword search alone: that would be a bug, not a trade-off.
    assert result["hybrid"]["ndcg@10"] >= result["keyword"]["ndcg@10"], result
    sizes = [2_000] if args.smoke else [10_000, 100_000]
    rows: list[list[str]] = []
    scaled: dict[str, Any] = {}
    payload = {"quality": result, "encoder_chunks_per_s": encoder, "scale": scaled}
    backends = [("SQLite", None), *(("PostgreSQL", dsn) for dsn in args.postgres)]
    for label, admin in backends:
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                drop = None
                if admin is None:
                    url = f"sqlite+aiosqlite:///{tmp}/s.db"
                else:
                    url, drop = await _postgres_database(admin)
                try:
                    measured = await scale(url, size, 10 if args.smoke else 50)
                finally:
                    if drop is not None:
                        await drop()
            scaled[f"{label}:{size}"] = measured
            rows.append(
                [
                    f"{label} ({measured['dense']})",
                    f"{size:,}",
                    f"{measured['chunks_per_s']:,.0f}",
                    f"{measured['load_s']:.2f} s",
                    *(f"{measured[f'{m}_p50_ms']:.1f} ms" for m in MODES),
                ]
            )
    table = "\n".join(
        [
            quality_table(result),
            "",
            f"Embedded encoder: {encoder:.1f} chunks/s of 800 tokens (windows of 256 word pieces"
            " averaged) — what bounds ingestion of real files",
            "",
            "Storage and search at scale (synthetic chunks: 120 words, 384-d unit vectors)",
            "",
            markdown_table(
                [
                    "backend",
                    "chunks",
                    "store chunks/s",
                    "first search (loads vectors)",
                    *(f"{m} p50" for m in MODES),
                ],
                rows,
            ),
        ]
    )
    return table, payload


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--postgres",
        action="append",
        default=[],
        help="admin DSN (repeatable); a scratch database is made and dropped on each",
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    table, payload = asyncio.run(run(args))
    print(table)
    if not args.smoke:
        write_results("retrieval", {"machine": machine(), **payload}, table)


if __name__ == "__main__":
    main()
