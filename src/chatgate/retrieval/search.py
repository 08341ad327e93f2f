"""Hybrid search over vector stores: dense (``retrieval.dense``: in memory, or pgvector) and
keyword (the store's full-text index), fused by reciprocal rank.

Scores are in [0, 1] as OpenAI's are: cosine similarity for ``vector``, ``s / (1 + s)`` of the
keyword relevance for ``keyword``, and for ``hybrid`` the fused score divided by the best a
result can get (first in both lists). Every hit also carries its cosine ``similarity`` to the
query, whichever list found it, so grounded chat can apply one relevance threshold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from chatgate.protocol.vector_stores import ComparisonFilter, CompoundFilter
from chatgate.retrieval.dense import DenseIndex
from chatgate.retrieval.filters import matches
from chatgate.state.vector_stores import VectorStoreStore

__all__ = ["Hit", "SearchMode", "Searcher"]

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


Embed = Callable[[str, list[str]], Awaitable[tuple[np.ndarray, int]]]
"""(embedding model, queries) -> (unit query vectors, input tokens the model used)."""


class Searcher:
    def __init__(
        self,
        store: VectorStoreStore,
        embed: Embed,
        dense: DenseIndex,
        *,
        candidates: int = 50,
        rrf_k: float = 60.0,
    ):
        self._store = store
        self._embed = embed
        self.dense = dense
        self._candidates = candidates
        self._rrf_k = rrf_k
        self._files: dict[str, tuple[int, dict[str, tuple[str, dict[str, Any]]]]] = {}

    async def _file_info(
        self, store_id: str, version: int
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        cached = self._files.get(store_id)
        if cached is None or cached[0] != version:
            cached = (version, await self._store.file_attributes(store_id))
            self._files[store_id] = cached
        return cached[1]

    async def search(
        self,
        stores: Sequence[tuple[str, str]],
        queries: list[str],
        *,
        limit: int,
        filters: ComparisonFilter | CompoundFilter | None = None,
        mode: SearchMode = "hybrid",
        score_threshold: float = 0.0,
        usage: list[int] | None = None,
    ) -> list[Hit]:
        """The best ``limit`` chunks across ``stores`` (``(store id, embedding model)``); the
        tokens of each query embedding are appended to ``usage``."""
        versions = await self._store.versions([s for s, _ in stores])
        hits: list[Hit] = []
        query_vectors: dict[str, np.ndarray] = {}
        for store_id, model in stores:
            if store_id not in versions:
                continue
            if model not in query_vectors:
                query_vectors[model], tokens = await self._embed(model, queries)
                if usage is not None:
                    usage.append(tokens)
            hits += await self._search_one(
                store_id,
                versions[store_id],
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
        version: int,
        *,
        query_vectors: np.ndarray,
        keyword_query: str,
        limit: int,
        filters: ComparisonFilter | CompoundFilter | None,
        mode: SearchMode,
    ) -> list[Hit]:
        info = await self._file_info(store_id, version)
        allowed = {f for f, (_, attrs) in info.items() if matches(filters, attrs)}
        if not allowed:
            return []
        depth = max(self._candidates, limit)
        rankings: list[list[int]] = []  # chunk ids, best first
        similarity: dict[int, float] = {}
        file_of: dict[int, str] = {}
        if mode in ("hybrid", "vector"):
            only = None if filters is None and len(allowed) == len(info) else allowed
            nearest = await self.dense.nearest(store_id, version, query_vectors, only, depth)
            nearest = [n for n in nearest if n[1] in allowed]  # files still being ingested
            rankings.append([chunk_id for chunk_id, _, _ in nearest])
            for chunk_id, file_id, value in nearest:
                similarity[chunk_id], file_of[chunk_id] = value, file_id
        keyword_scores: dict[int, float] = {}
        if mode in ("hybrid", "keyword"):
            found = await self._store.keyword(store_id, keyword_query, depth * 2)
            ranking = [(c, f, s) for c, f, s in found if f in allowed][:depth]
            rankings.append([chunk_id for chunk_id, _, _ in ranking])
            for chunk_id, file_id, relevance in ranking:
                keyword_scores[chunk_id], file_of[chunk_id] = relevance, file_id
            missing = [c for c in keyword_scores if c not in similarity]
            similarity.update(
                await self.dense.similarities(store_id, version, query_vectors, missing)
            )
        fused: dict[int, float] = {}
        for ranked in rankings:
            for rank, chunk_id in enumerate(ranked, start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (self._rrf_k + rank)
        best = len(rankings) / (self._rrf_k + 1)
        hits = []
        for chunk_id, value in fused.items():
            if mode == "vector":
                score = max(0.0, similarity.get(chunk_id, 0.0))
            elif mode == "keyword":
                relevance = max(0.0, keyword_scores[chunk_id])
                score = relevance / (1.0 + relevance)
            else:
                score = value / best
            file_id = file_of[chunk_id]
            filename, attributes = info.get(file_id, (file_id, {}))
            hits.append(
                Hit(
                    chunk_id,
                    store_id,
                    file_id,
                    filename,
                    attributes,
                    min(1.0, score),
                    max(0.0, similarity.get(chunk_id, 0.0)),
                )
            )
        return hits
