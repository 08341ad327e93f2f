"""Hybrid search over vector stores: dense (cosine over the vectors, held in memory per store
and reloaded when the store's version moves) and keyword (the store's full-text index), fused by
reciprocal rank.

Scores are in [0, 1] as OpenAI's are: cosine similarity for ``vector``, ``s / (1 + s)`` of the
keyword relevance for ``keyword``, and for ``hybrid`` the fused score divided by the best a
result can get (first in both lists). Every hit also carries its cosine ``similarity`` to the
query, whichever list found it, so grounded chat can apply one relevance threshold.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from chatgate.protocol.vector_stores import ComparisonFilter, CompoundFilter
from chatgate.retrieval.filters import matches
from chatgate.state.vector_stores import VectorStoreStore

__all__ = ["Hit", "Searcher"]

SearchMode = Literal["hybrid", "vector", "keyword"]


@dataclass(slots=True)
class Hit:
    chunk_id: int
    vector_store_id: str
    file_id: str
    filename: str
    attributes: dict[str, Any]
    score: float
    similarity: float
    text: str = ""
    seq: int = 0
    start: int = 0
    end: int = 0


@dataclass(slots=True)
class _StoreVectors:
    version: int
    ids: np.ndarray  # int64, sorted
    files: np.ndarray  # file id per row (object)
    matrix: np.ndarray  # float32 [rows, dims]
    file_info: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.ids.nbytes)


Embed = Callable[[str, list[str]], Awaitable[np.ndarray]]
"""(embedding model, queries) -> unit query vectors."""


class Searcher:
    def __init__(
        self,
        store: VectorStoreStore,
        embed: Embed,
        *,
        candidates: int = 50,
        rrf_k: float = 60.0,
        cache_bytes: int = 1 << 30,
    ):
        self._store = store
        self._embed = embed
        self._candidates = candidates
        self._rrf_k = rrf_k
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _StoreVectors] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def _vectors(self, store_id: str, version: int) -> _StoreVectors:
        cached = self._cache.get(store_id)
        if cached is not None and cached.version == version:
            self._cache.move_to_end(store_id)
            return cached
        lock = self._locks.setdefault(store_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(store_id)
            if cached is not None and cached.version == version:
                return cached
            ids, files, blobs = await self._store.vectors(store_id)
            file_info = await self._store.file_attributes(store_id)
            if blobs:
                width = len(blobs[0]) // 4
                matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), width)
            else:
                matrix = np.zeros((0, 0), dtype=np.float32)
            loaded = _StoreVectors(
                version,
                np.array(ids, dtype=np.int64),
                np.array(files, dtype=object),
                matrix,
                file_info,
            )
            self._cache[store_id] = loaded
            self._cache.move_to_end(store_id)
            self._evict()
            return loaded

    def _evict(self) -> None:
        total = sum(v.nbytes for v in self._cache.values())
        while total > self._cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            total -= dropped.nbytes

    async def search(
        self,
        stores: Sequence[tuple[str, str]],
        queries: list[str],
        *,
        limit: int,
        filters: ComparisonFilter | CompoundFilter | None = None,
        mode: SearchMode = "hybrid",
        score_threshold: float = 0.0,
    ) -> list[Hit]:
        """The best ``limit`` chunks across ``stores`` (``(store id, embedding model)``)."""
        versions = await self._store.versions([s for s, _ in stores])
        hits: list[Hit] = []
        query_vectors: dict[str, np.ndarray] = {}
        for store_id, model in stores:
            if store_id not in versions:
                continue
            data = await self._vectors(store_id, versions[store_id])
            if model not in query_vectors:
                query_vectors[model] = await self._embed(model, queries)
            hits += await self._search_one(
                store_id,
                data,
                query_vectors=query_vectors[model],
                keyword_query=" ".join(queries),
                limit=limit,
                filters=filters,
                mode=mode,
            )
        hits = [h for h in hits if h.score >= score_threshold]
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        hits = hits[:limit]
        texts = await self._store.chunks([h.chunk_id for h in hits])
        for hit in hits:
            chunk = texts.get(hit.chunk_id)
            if chunk is not None:
                hit.text, hit.seq, hit.start, hit.end = (
                    chunk.text,
                    chunk.seq,
                    chunk.start,
                    chunk.end,
                )
        return [h for h in hits if h.chunk_id in texts]

    async def _search_one(
        self,
        store_id: str,
        data: _StoreVectors,
        *,
        query_vectors: np.ndarray,
        keyword_query: str,
        limit: int,
        filters: ComparisonFilter | CompoundFilter | None,
        mode: SearchMode,
    ) -> list[Hit]:
        if not len(data.ids):
            return []
        allowed = {f for f, (_, attrs) in data.file_info.items() if matches(filters, attrs)}
        mask = np.fromiter((f in allowed for f in data.files), dtype=bool, count=len(data.files))
        if not mask.any():
            return []
        # Several queries: a chunk's similarity is its best against any of them.
        similarity = (data.matrix @ query_vectors.T).max(axis=1)
        similarity = np.where(mask, similarity, -np.inf)
        depth = max(self._candidates, limit)
        rankings: list[list[int]] = []  # row numbers, best first
        if mode in ("hybrid", "vector"):
            count = min(depth, int(mask.sum()))
            top = np.argpartition(-similarity, count - 1)[:count]
            rankings.append([int(i) for i in top[np.argsort(-similarity[top], kind="stable")]])
        keyword_scores: dict[int, float] = {}
        if mode in ("hybrid", "keyword"):
            rows: list[int] = []
            for chunk_id, relevance in await self._store.keyword(
                store_id, keyword_query, depth * 2
            ):
                row = int(np.searchsorted(data.ids, chunk_id))
                if row < len(data.ids) and data.ids[row] == chunk_id and mask[row]:
                    rows.append(row)
                    keyword_scores[row] = relevance
            rankings.append(rows[:depth])
        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, row in enumerate(ranking, start=1):
                fused[row] = fused.get(row, 0.0) + 1.0 / (self._rrf_k + rank)
        best = len(rankings) / (self._rrf_k + 1)
        hits = []
        for row, value in fused.items():
            if mode == "vector":
                score = max(0.0, float(similarity[row]))
            elif mode == "keyword":
                relevance = max(0.0, keyword_scores[row])
                score = relevance / (1.0 + relevance)
            else:
                score = value / best
            file_id = str(data.files[row])
            filename, attributes = data.file_info.get(file_id, (file_id, {}))
            hits.append(
                Hit(
                    int(data.ids[row]),
                    store_id,
                    file_id,
                    filename,
                    attributes,
                    min(1.0, score),
                    max(0.0, float(similarity[row])),
                )
            )
        return hits
