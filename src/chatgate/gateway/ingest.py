"""Ingestion of files attached to vector stores: claim a file under a lease, read it from the
files store, extract its text, chunk it, embed the chunks (background priority, so interactive
embeddings and searches go first) and store them with the file's new status in one transaction,
only while the lease is still ours.

A runner that dies mid-file stores nothing; the lease lapses and another runner (or this one,
restarted) takes the file again. A file that fails to ingest ``max_attempts`` times for reasons
of ours is marked ``failed`` with ``server_error``; one that cannot be read as text fails at once
with ``unsupported_file`` or ``invalid_file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import numpy as np

from chatgate.config import VectorStoresConfig
from chatgate.gateway.embeddings import EmbeddingModels
from chatgate.providers.embedding import BACKGROUND
from chatgate.retrieval.chunking import Chunk, chunk_text, parse_chunking_strategy
from chatgate.retrieval.documents import DocumentError, extract_text
from chatgate.state.files import FileStore
from chatgate.state.vector_stores import ChunkRecord, VectorStoreFileInfo, VectorStoreStore
from chatgate.tokenizers import encoding_for

__all__ = ["EMBED_GROUP", "IngestRunner"]

log = logging.getLogger("chatgate.ingest")

EMBED_GROUP = 16
"""Chunks per embedding call: an interactive request waits behind at most one such group."""

_CHUNK_ENCODING = "o200k_base"


class IngestRunner:
    def __init__(
        self,
        store: VectorStoreStore,
        files: FileStore,
        models: EmbeddingModels,
        config: VectorStoresConfig,
    ):
        self._store = store
        self._files = files
        self._models = models
        self._config = config
        self._owner = "ingest-" + secrets.token_hex(6)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._active: set[asyncio.Task[None]] = set()
        self._encoder: Any = None

    def nudge(self) -> None:
        """New files are waiting: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chatgate-ingest")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._active) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _loop(self) -> None:
        while True:
            free = self._config.ingest_concurrency - len(self._active)
            if free > 0:
                try:
                    claimed = await self._store.claim(self._owner, self._config.lease_seconds, free)
                except Exception:
                    log.exception("claiming files to ingest failed")
                    claimed = []
                for info in claimed:
                    task = asyncio.create_task(self._ingest(info))
                    self._active.add(task)
                    task.add_done_callback(self._done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_interval)
            self._wake.clear()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._wake.set()

    async def _ingest(self, info: VectorStoreFileInfo) -> None:
        store_id, file_id = info.vector_store_id, info.file_id
        renewer = asyncio.create_task(self._renew(store_id, file_id))
        try:
            records, usage = await self._process(info)
            await self._store.finish(
                store_id, file_id, self._owner, chunks=records, usage_bytes=usage
            )
        except DocumentError as exc:
            error = {"code": exc.code, "message": exc.message}
            await self._store.finish(store_id, file_id, self._owner, error=error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("ingesting %s into %s failed", file_id, store_id)
            if info.attempts >= self._config.max_attempts:
                error = {
                    "code": "server_error",
                    "message": f"Ingestion failed: {type(exc).__name__}.",
                }
                await self._store.finish(store_id, file_id, self._owner, error=error)
            # else: the lease lapses and the file is taken again
        finally:
            renewer.cancel()

    async def _renew(self, store_id: str, file_id: str) -> None:
        lease = self._config.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            await self._store.renew(store_id, file_id, self._owner, lease)

    async def _process(self, info: VectorStoreFileInfo) -> tuple[list[ChunkRecord], int]:
        file = await self._files.get_any(info.file_id)
        if file is None:
            raise DocumentError("invalid_file", "The file no longer exists.")
        data = await self._files.read(info.file_id)
        text = await asyncio.to_thread(extract_text, data, file.filename)
        strategy = parse_chunking_strategy(info.chunking)
        if self._encoder is None:
            self._encoder = encoding_for(_CHUNK_ENCODING)
        chunks: list[Chunk] = await asyncio.to_thread(
            chunk_text,
            text,
            self._encoder,
            strategy.max_chunk_size_tokens,
            strategy.chunk_overlap_tokens,
        )
        if not chunks:
            raise DocumentError("invalid_file", "The file has no text to index.")
        store = await self._store.versions([info.vector_store_id])
        if not store:
            return [], 0
        model = await self._model_of(info.vector_store_id)
        vectors: list[np.ndarray] = []
        for start in range(0, len(chunks), EMBED_GROUP):
            group = [c.text for c in chunks[start : start + EMBED_GROUP]]
            result = await model.provider.embed(group, windows=True, priority=BACKGROUND)
            vectors.append(result.vectors)
        matrix = np.vstack(vectors).astype("<f4", copy=False)
        records = [
            ChunkRecord(c.index, c.start, c.end, c.tokens, c.text, matrix[i].tobytes())
            for i, c in enumerate(chunks)
        ]
        usage = sum(len(c.text.encode()) for c in chunks) + matrix.nbytes
        return records, usage

    async def _model_of(self, store_id: str) -> Any:
        name = await self._store.embedding_model(store_id)
        return self._models.resolve(name)
