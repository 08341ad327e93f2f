"""OpenAI's Vector Stores API as a service: stores that belong to their key and owner, files
attached from ``/v1/files`` (ingested by the ``IngestRunner``), file batches, and search.

Objects are rendered here in OpenAI's shapes; the HTTP layer only parses and answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatgate.config import ConfigError, VectorStoresConfig
from chatgate.gateway.context import Context
from chatgate.gateway.embeddings import EmbeddingModel, EmbeddingModels, served
from chatgate.gateway.ingest import IngestRunner
from chatgate.gateway.operations import rough_tokens
from chatgate.gateway.storage import StorageMeter
from chatgate.gateway.store_activity import StoreActivity
from chatgate.protocol import InvalidRequestError, NotFoundError
from chatgate.protocol.vector_stores import (
    FileBatchEntry,
    VectorStoreCreateRequest,
    VectorStoreFileBatchRequest,
    VectorStoreSearchRequest,
    VectorStoreUpdateRequest,
)
from chatgate.retrieval.chunking import (
    ChunkingStrategyError,
    parse_chunking_strategy,
    strategy_json,
)
from chatgate.retrieval.dense import MemoryDense, PgvectorDense
from chatgate.retrieval.search import Hit, Searcher
from chatgate.state.files import FileAccess, FileStore
from chatgate.state.storage import StorageLedger
from chatgate.state.vector_stores import (
    VectorStoreFileInfo,
    VectorStoreInfo,
    VectorStoreStore,
    new_id,
)

__all__ = ["SearchContext", "StoreSearch", "VectorStores", "hit_json"]


@dataclass(frozen=True, slots=True)
class StoreSearch:
    """A search's request, with the store it searches (looked up before the pipeline runs)."""

    store: VectorStoreInfo
    request: VectorStoreSearchRequest
    queries: list[str]

    @property
    def input_tokens(self) -> int:
        return rough_tokens(self.queries)


SearchContext = Context[StoreSearch, EmbeddingModel]


def _chunking(value: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return strategy_json(parse_chunking_strategy(value))
    except ChunkingStrategyError as exc:
        raise InvalidRequestError(str(exc), param=exc.param, code="invalid_value") from None


def store_object(info: VectorStoreInfo) -> dict[str, Any]:
    in_progress = info.counts["in_progress"]
    status = "expired" if info.expired else "in_progress" if in_progress else "completed"
    body: dict[str, Any] = {
        "id": info.id,
        "object": "vector_store",
        "created_at": int(info.created_at),
        "name": info.name,
        "description": info.description,
        "usage_bytes": info.usage_bytes,
        "file_counts": info.counts,
        "status": status,
        "expires_at": None if info.expires_at is None else int(info.expires_at),
        "last_active_at": int(info.last_active_at),
        "metadata": info.metadata or {},
    }
    if info.expires_after is not None:  # optional in OpenAI's schema, and not nullable
        body["expires_after"] = info.expires_after
    return body


def file_object(info: VectorStoreFileInfo) -> dict[str, Any]:
    return {
        "id": info.file_id,
        "object": "vector_store.file",
        "usage_bytes": info.usage_bytes,
        "created_at": int(info.created_at),
        "vector_store_id": info.vector_store_id,
        "status": info.status,
        "last_error": info.last_error,
        "chunking_strategy": info.chunking,
        "attributes": info.attributes or {},
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "file_id": hit.file_id,
        "filename": hit.filename,
        "score": round(hit.score, 6),
        "attributes": hit.attributes,
        "content": [{"type": "text", "text": hit.text}],
    }


class VectorStores:
    def __init__(
        self,
        store: VectorStoreStore,
        files: FileStore,
        models: EmbeddingModels,
        config: VectorStoresConfig,
    ):
        self.store = store
        self._files = files
        self._models = models
        self._config = config
        self.runner = IngestRunner(store, files, models, config)
        self.activity = StoreActivity(store)
        self.storage = StorageMeter(StorageLedger(store.db), config.storage_interval)
        self.searcher = Searcher(
            store,
            self._embed_queries,
            MemoryDense(store, config.cache_bytes),
            candidates=config.candidates,
            rrf_k=config.rrf_k,
        )

    def touched(self, store_id: str) -> None:
        self.activity.touched([store_id])

    async def close(self) -> None:
        await self.storage.close()
        await self.activity.close()

    async def start(self) -> None:
        """Choose the vector backend: pgvector where configured or (``auto``) available."""
        await self.activity.start()
        await self.storage.start()
        wanted = self._config.dense
        if wanted == "memory":
            return
        if await self.store.enable_pgvector():
            self.searcher.dense = PgvectorDense(self.store.db)
        elif wanted == "pgvector":
            raise ConfigError(
                "vector_stores.dense is `pgvector`, but the store is not PostgreSQL with the "
                "pgvector extension available"
            )

    @property
    def dense_backend(self) -> str:
        return "pgvector" if isinstance(self.searcher.dense, PgvectorDense) else "memory"

    async def _embed_queries(self, model: str, queries: list[str]) -> tuple[np.ndarray, int]:
        result = await self._models.resolve(model).provider.embed(queries)
        vectors = result.vectors
        unit: np.ndarray = vectors / np.maximum(
            np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12
        )
        return unit, result.prompt_tokens

    def _embedding_model(self) -> str:
        if self._config.embedding_model is not None:
            return self._models.resolve(self._config.embedding_model).name
        default = self._models.default
        if default is None:
            raise InvalidRequestError("No embedding model is configured for vector stores.")
        return default.name

    # -- stores ---------------------------------------------------------------------------

    async def find(self, store_id: str, access: FileAccess) -> VectorStoreInfo:
        info = await self.store.get(store_id, access)
        if info is None:
            raise NotFoundError(
                f"No vector store found with id '{store_id}'.", param="vector_store_id"
            )
        return info

    async def create(self, request: VectorStoreCreateRequest, access: FileAccess) -> dict[str, Any]:
        chunking = _chunking(request.chunking_strategy)
        entries = [await self._entry(f, chunking, None, access) for f in request.file_ids]
        store_id = await self.store.create(
            key_id=access.key_id,
            owner=access.owner,
            name=request.name,
            description=request.description,
            metadata=request.metadata,
            expires_after=request.expires_after.model_dump() if request.expires_after else None,
            embedding_model=self._embedding_model(),
        )
        if entries:
            await self.store.add_files(store_id, entries)
            self.runner.nudge()
        return store_object(await self.find(store_id, access))

    async def update(
        self, store_id: str, request: VectorStoreUpdateRequest, access: FileAccess
    ) -> dict[str, Any]:
        await self.find(store_id, access)
        changes = request.model_dump(exclude_unset=True)
        await self.store.update(store_id, changes)
        return store_object(await self.find(store_id, access))

    async def delete(self, store_id: str, access: FileAccess) -> dict[str, Any]:
        await self.find(store_id, access)
        await self.store.delete(store_id)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    # -- files ----------------------------------------------------------------------------

    async def _entry(
        self,
        file_id: str,
        chunking: dict[str, Any],
        attributes: dict[str, Any] | None,
        access: FileAccess,
    ) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
        info = await self._files.get(file_id, access)
        if info is None:
            raise NotFoundError(f"No file found with id '{file_id}'.", param="file_id")
        return file_id, info.filename, chunking, attributes

    async def attach(
        self,
        store_id: str,
        file_id: str,
        chunking_strategy: dict[str, Any] | None,
        attributes: dict[str, Any] | None,
        access: FileAccess,
    ) -> dict[str, Any]:
        await self.find(store_id, access)
        entry = await self._entry(file_id, _chunking(chunking_strategy), attributes, access)
        await self.store.add_files(store_id, [entry])
        self.runner.nudge()
        return await self.file(store_id, file_id, access)

    async def file(self, store_id: str, file_id: str, access: FileAccess) -> dict[str, Any]:
        await self.find(store_id, access)
        info = await self.store.get_file(store_id, file_id)
        if info is None:
            raise NotFoundError(
                f"No file found with id '{file_id}' in vector store '{store_id}'.",
                param="file_id",
            )
        return file_object(info)

    async def set_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, Any] | None, access: FileAccess
    ) -> dict[str, Any]:
        await self.file(store_id, file_id, access)
        await self.store.set_attributes(store_id, file_id, attributes)
        return await self.file(store_id, file_id, access)

    async def detach(self, store_id: str, file_id: str, access: FileAccess) -> dict[str, Any]:
        await self.file(store_id, file_id, access)
        await self.store.delete_file(store_id, file_id)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    async def file_content(self, store_id: str, file_id: str, access: FileAccess) -> dict[str, Any]:
        await self.file(store_id, file_id, access)
        chunks = await self.store.file_chunks(store_id, file_id)
        return {
            "object": "vector_store.file_content.page",
            "data": [{"type": "text", "text": c.text} for c in chunks],
            "has_more": False,
            "next_page": None,
        }

    # -- file batches ---------------------------------------------------------------------

    async def create_batch(
        self, store_id: str, request: VectorStoreFileBatchRequest, access: FileAccess
    ) -> dict[str, Any]:
        await self.find(store_id, access)
        if (request.file_ids is None) == (request.files is None):
            raise InvalidRequestError(
                "Give exactly one of 'file_ids' and 'files'.", param="file_ids"
            )
        if request.files is not None:
            given: list[FileBatchEntry] = request.files
        else:
            given = [
                FileBatchEntry(
                    file_id=f,
                    chunking_strategy=request.chunking_strategy,
                    attributes=request.attributes,
                )
                for f in request.file_ids or []
            ]
        entries = [
            await self._entry(e.file_id, _chunking(e.chunking_strategy), e.attributes, access)
            for e in given
        ]
        batch_id = new_id("vsfb_")
        await self.store.add_files(store_id, entries, batch_id=batch_id)
        self.runner.nudge()
        return await self.batch(store_id, batch_id, access)

    async def batch(self, store_id: str, batch_id: str, access: FileAccess) -> dict[str, Any]:
        await self.find(store_id, access)
        found = await self.store.get_batch(store_id, batch_id)
        if found is None:
            raise NotFoundError(f"No file batch found with id '{batch_id}'.", param="batch_id")
        created_at, cancelled = found
        counts = await self.store.batch_counts(store_id, batch_id)
        if cancelled:
            status = "cancelled"
        elif counts["in_progress"]:
            status = "in_progress"
        elif counts["failed"] and not counts["completed"]:
            status = "failed"
        else:
            status = "completed"
        return {
            "id": batch_id,
            "object": "vector_store.files_batch",
            "created_at": int(created_at),
            "vector_store_id": store_id,
            "status": status,
            "file_counts": counts,
        }

    async def cancel_batch(
        self, store_id: str, batch_id: str, access: FileAccess
    ) -> dict[str, Any]:
        await self.batch(store_id, batch_id, access)
        await self.store.cancel_batch(store_id, batch_id)
        return await self.batch(store_id, batch_id, access)

    # -- search ---------------------------------------------------------------------------

    async def searchable(
        self, store_id: str, request: VectorStoreSearchRequest, access: FileAccess
    ) -> tuple[StoreSearch, EmbeddingModel]:
        """What a search needs before it runs: the store (404, 400 expired), some query text,
        and the store's embedding model (the pipeline's target: the query is embedded with it)."""
        info = await self.find(store_id, access)
        if info.expired:
            raise InvalidRequestError(
                f"Vector store '{store_id}' has expired.", param="vector_store_id", code="expired"
            )
        queries = [request.query] if isinstance(request.query, str) else request.query
        if not any(q.strip() for q in queries):
            raise InvalidRequestError("'query' must contain some text.", param="query")
        return StoreSearch(info, request, queries), self._models.resolve(info.embedding_model)

    async def __call__(self, ctx: SearchContext) -> dict[str, Any]:
        """The pipeline's innermost step for a vector store search."""
        search = ctx.request
        request, queries, store_id = search.request, search.queries, search.store.id
        ranking = request.ranking_options
        tokens: list[int] = []
        ctx.marks["upstream_start"] = time.monotonic()
        hits = await self.searcher.search(
            [(store_id, search.store.embedding_model)],
            queries,
            limit=request.max_num_results,
            filters=request.filters,
            mode=request.search_mode,
            score_threshold=ranking.score_threshold if ranking else 0.0,
            usage=tokens,
        )
        ctx.marks["upstream_end"] = time.monotonic()
        served(ctx, ctx.model, sum(tokens))
        self.touched(store_id)
        return {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [hit_json(h) for h in hits],
            "has_more": False,
            "next_page": None,
        }
