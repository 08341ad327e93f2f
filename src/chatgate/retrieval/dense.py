"""The vector half of search behind one interface, two backends:

- ``MemoryDense``: each process holds a store's vectors as one float32 matrix (loaded from the
  store, reloaded when the store's version moves) and scores them all with one matrix product —
  exact, and the embedded default on SQLite (or PostgreSQL without pgvector);
- ``PgvectorDense``: PostgreSQL with pgvector keeps the vectors in a ``vector`` column with an
  HNSW index per width (cosine), so search cost does not grow with the store and replicas hold
  nothing in memory.

Both answer the same two questions: the nearest chunks to some query vectors (optionally only
from some files), and the similarity of given chunks (keyword hits the vector search missed).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from chatgate.state.db import Database
from chatgate.state.vector_stores import VectorStoreStore, vector_text

__all__ = ["DenseIndex", "MemoryDense", "PgvectorDense", "vector_literal"]


class DenseIndex(Protocol):
    async def nearest(
        self,
        store_id: str,
        version: int,
        queries: np.ndarray,
        files: set[str] | None,
        depth: int,
    ) -> list[tuple[int, str, float]]:
        """Up to ``depth`` ``(chunk id, file id, cosine similarity)``, best first; ``files``:
        only chunks of these files (None: any)."""
        ...

    async def similarities(
        self, store_id: str, version: int, queries: np.ndarray, chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        """The best cosine similarity of each chunk to any of ``queries``."""
        ...


@dataclass(slots=True)
class _Loaded:
    version: int
    ids: np.ndarray  # int64, ascending
    files: np.ndarray  # file id per row (object)
    matrix: np.ndarray  # float32 [rows, dims], unit rows

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.ids.nbytes)


class MemoryDense:
    def __init__(self, store: VectorStoreStore, cache_bytes: int):
        self._store = store
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def _load(self, store_id: str, version: int) -> _Loaded:
        cached = self._cache.get(store_id)
        if cached is not None and cached.version == version:
            self._cache.move_to_end(store_id)
            return cached
        async with self._locks.setdefault(store_id, asyncio.Lock()):
            cached = self._cache.get(store_id)
            if cached is not None and cached.version == version:
                return cached
            ids, files, blobs = await self._store.vectors(store_id)
            if blobs:
                width = len(blobs[0]) // 4
                matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), width)
            else:
                matrix = np.zeros((0, 0), dtype=np.float32)
            loaded = _Loaded(
                version, np.array(ids, dtype=np.int64), np.array(files, dtype=object), matrix
            )
            self._cache[store_id] = loaded
            self._cache.move_to_end(store_id)
            total = sum(v.nbytes for v in self._cache.values())
            while total > self._cache_bytes and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                total -= dropped.nbytes
            return loaded

    async def nearest(
        self,
        store_id: str,
        version: int,
        queries: np.ndarray,
        files: set[str] | None,
        depth: int,
    ) -> list[tuple[int, str, float]]:
        data = await self._load(store_id, version)
        if not len(data.ids):
            return []
        similarity = (data.matrix @ queries.T).max(axis=1)
        if files is not None:
            mask = np.fromiter((f in files for f in data.files), dtype=bool, count=len(data.files))
            similarity = np.where(mask, similarity, -np.inf)
            available = int(mask.sum())
        else:
            available = len(data.ids)
        count = min(depth, available)
        if count <= 0:
            return []
        top = np.argpartition(-similarity, count - 1)[:count]
        top = top[np.argsort(-similarity[top], kind="stable")]
        return [(int(data.ids[i]), str(data.files[i]), float(similarity[i])) for i in top]

    async def similarities(
        self, store_id: str, version: int, queries: np.ndarray, chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        data = await self._load(store_id, version)
        rows = np.searchsorted(data.ids, np.array(chunk_ids, dtype=np.int64))
        found = {
            chunk_id: int(row)
            for chunk_id, row in zip(chunk_ids, rows, strict=True)
            if row < len(data.ids) and data.ids[row] == chunk_id
        }
        if not found:
            return {}
        picked = data.matrix[list(found.values())]
        best = (picked @ queries.T).max(axis=1)
        return {chunk_id: float(s) for chunk_id, s in zip(found, best, strict=True)}


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of a vector."""
    return vector_text(vector.astype("<f4").tobytes())


class PgvectorDense:
    """Vectors in ``vector_store_chunk_vectors`` (written with the chunks by the store), one
    partial HNSW index per width; searched with pgvector's iterative index scans so a filter on
    files still fills the page."""

    def __init__(self, db: Database, ef_search: int = 100):
        self._db = db
        self._ef_search = ef_search

    async def nearest(
        self,
        store_id: str,
        version: int,
        queries: np.ndarray,
        files: set[str] | None,
        depth: int,
    ) -> list[tuple[int, str, float]]:
        width = int(queries.shape[1])
        best: dict[int, tuple[str, float]] = {}
        file_clause = " AND file_id = ANY(:files)" if files is not None else ""
        sql = text(
            f"SELECT chunk_id, file_id, 1 - (embedding::vector({width}) <=>"
            f" CAST(:q AS vector({width}))) AS similarity FROM vector_store_chunk_vectors"
            f" WHERE vector_store_id = :store AND dimensions = {width}{file_clause}"
            f" ORDER BY embedding::vector({width}) <=> CAST(:q AS vector({width})) LIMIT :depth"
        )
        async with self._db.session() as session:
            ef = max(self._ef_search, depth)
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef)}"))
            try:  # pgvector >= 0.8: keep scanning the index until filtered rows fill the page
                async with session.begin_nested():
                    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            except DBAPIError:
                pass  # an older pgvector: a filter may return fewer rows than asked
            for query in queries:
                params: dict[str, object] = {
                    "q": vector_literal(query),
                    "store": store_id,
                    "depth": depth,
                }
                if files is not None:
                    params["files"] = list(files)
                for chunk_id, file_id, similarity in await session.execute(sql, params):
                    seen = best.get(chunk_id)
                    if seen is None or similarity > seen[1]:
                        best[chunk_id] = (file_id, float(similarity))
        ranked = sorted(best.items(), key=lambda item: -item[1][1])[:depth]
        return [(chunk_id, file_id, similarity) for chunk_id, (file_id, similarity) in ranked]

    async def similarities(
        self, store_id: str, version: int, queries: np.ndarray, chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        if not len(chunk_ids):
            return {}
        out: dict[int, float] = {}
        sql = text(
            "SELECT chunk_id, 1 - (embedding <=> CAST(:q AS vector)) FROM"
            " vector_store_chunk_vectors WHERE chunk_id = ANY(:ids)"
        )
        async with self._db.session() as session:
            for query in queries:
                rows = await session.execute(
                    sql, {"q": vector_literal(query), "ids": list(chunk_ids)}
                )
                for chunk_id, similarity in rows:
                    out[chunk_id] = max(out.get(chunk_id, -1.0), float(similarity))
        return out
