"""Ingestion of files attached to vector stores: claim a file under a lease, read it from the
files store, extract its text, chunk it, embed the chunks (background priority, so interactive
embeddings and searches go first) and store them with the file's new status in one transaction,
only while the lease is still ours.

A runner that dies mid-file stores nothing; the lease lapses and another runner (or this one,
restarted) takes the file again. A file that fails to ingest ``max_attempts`` times for reasons
of ours is marked ``failed`` with ``server_error``; one that cannot be read as text fails at once
with ``unsupported_file`` or ``invalid_file``.

Embedding a file's chunks is an operation of the pipeline (``vector_stores.files``), on behalf of
the store's key at ``low`` priority: its limits (a request, the chunks' tokens, a concurrency
slot), its budget (the embedding model's price), the request log, metrics and traces. A file the
limits have no room for now waits (its lease kept) and is tried again; one that can never fit
(more tokens than a tokens-per-minute limit), or whose key has no budget left or was revoked,
fails with the reason in ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import numpy as np

from chatgate.config import VectorStoresConfig
from chatgate.gateway.auth import Principal
from chatgate.gateway.context import Context
from chatgate.gateway.embeddings import EmbeddingModel, EmbeddingModels, served
from chatgate.gateway.observe import Observer, RequestEnd
from chatgate.gateway.operations import VECTOR_STORE_FILES
from chatgate.gateway.pipeline import Pipeline
from chatgate.protocol import (
    ChatgateError,
    OverloadedError,
    RequestTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from chatgate.providers.embedding import BACKGROUND
from chatgate.retrieval.chunking import Chunk, chunk_text, parse_chunking_strategy
from chatgate.retrieval.documents import DocumentError, extract_text
from chatgate.state.files import FileStore
from chatgate.state.keys import KeyStore
from chatgate.state.vector_stores import ChunkRecord, VectorStoreFileInfo, VectorStoreStore
from chatgate.tokenizers import encoding_for

__all__ = ["EMBED_GROUP", "IngestContext", "IngestRunner"]

log = logging.getLogger("chatgate.ingest")

EMBED_GROUP = 16
"""Chunks per embedding call: an interactive request waits behind at most one such group."""

_CHUNK_ENCODING = "o200k_base"

IngestContext = Context[list[Chunk], EmbeddingModel]


class NotIngested(Exception):
    """The file will not be ingested for a reason of governance (a limit it can never fit, no
    budget, a revoked key): it fails with this message (OpenAI's ``server_error`` code)."""


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
        self._pipeline: Pipeline | None = None
        self._observer: Observer | None = None
        self._keys: KeyStore | None = None

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
        except NotIngested as exc:
            error = {"code": "server_error", "message": f"Not ingested: {exc}"}
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
        matrix = await self._governed_embed(info, chunks)
        if matrix is None:  # the store went away meanwhile
            return [], 0
        records = [
            ChunkRecord(c.index, c.start, c.end, c.tokens, c.text, matrix[i].tobytes())
            for i, c in enumerate(chunks)
        ]
        usage = sum(len(c.text.encode()) for c in chunks) + matrix.nbytes
        return records, usage

    def governed_by(self, pipeline: Pipeline, observer: Observer, keys: KeyStore) -> None:
        """Run every file's embedding through ``pipeline`` (set once, after it is built: the
        pipeline's work for this operation is :meth:`embed_chunks`)."""
        self._pipeline, self._observer, self._keys = pipeline, observer, keys

    async def _principal(self, key_id: str | None) -> Principal:
        if key_id is None:
            return Principal("master")
        key = await self._keys.get(key_id) if self._keys is not None else None
        if (
            key is None
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at < time.time())
        ):
            raise NotIngested("The vector store's key was revoked or expired.")
        return Principal("key", key=key)

    async def _governed_embed(
        self, info: VectorStoreFileInfo, chunks: list[Chunk]
    ) -> np.ndarray | None:
        """The chunks' vectors, embedded through the pipeline; None when the store is gone.
        Waits while the limits have no room (the lease is renewed meanwhile)."""
        try:
            key_id, _owner, model_name = await self._store.owner_of(info.vector_store_id)
        except LookupError:
            return None
        model = self._models.resolve(model_name)
        assert self._pipeline is not None and self._observer is not None, "governed_by() first"
        principal = await self._principal(key_id)
        attempt = 0
        while True:
            attempt += 1
            rid = f"ingest-{info.vector_store_id}-{info.file_id}-{info.attempts}-{attempt}"
            ctx = self._pipeline.context(
                VECTOR_STORE_FILES,
                chunks,
                model,
                principal,
                rid,
                input_tokens=sum(c.tokens for c in chunks),
                priority="low",
            )
            end = RequestEnd(rid, model.name, principal, time.monotonic(), 500)
            end.endpoint = VECTOR_STORE_FILES.endpoint
            try:
                matrix: np.ndarray = await self._pipeline.run(ctx)
            except RequestTooLargeError as exc:
                self._ended(end, exc)
                raise NotIngested(f"The file is too large for a limit: {exc.message}") from None
            except (TooManyRequestsError, OverloadedError, ServiceUnavailableError) as exc:
                self._ended(end, exc)
                await asyncio.sleep(_retry_after(exc))  # room comes back; the lease is renewed
                continue
            except ChatgateError as exc:
                self._ended(end, exc)
                raise NotIngested(exc.message) from None
            end.ctx, end.status = ctx, 200
            self._observer.finish(end)
            return matrix

    def _ended(self, end: RequestEnd, error: ChatgateError) -> None:
        assert self._observer is not None
        end.status, end.error_type = error.status_code, error.error_type
        self._observer.finish(end)

    async def embed_chunks(self, ctx: IngestContext) -> np.ndarray:
        """The pipeline's innermost step for ``vector_stores.files``: every chunk embedded whole
        (long ones as the average of windows), ``EMBED_GROUP`` at a time at background priority,
        so interactive work on the same encoder goes first."""
        chunks, model = ctx.request, ctx.model
        vectors: list[np.ndarray] = []
        tokens = 0
        ctx.marks["upstream_start"] = time.monotonic()
        for start in range(0, len(chunks), EMBED_GROUP):
            group = [c.text for c in chunks[start : start + EMBED_GROUP]]
            result = await model.provider.embed(group, windows=True, priority=BACKGROUND)
            vectors.append(result.vectors)
            tokens += result.prompt_tokens
        ctx.marks["upstream_end"] = time.monotonic()
        served(ctx, model, tokens)
        matrix: np.ndarray = np.vstack(vectors).astype("<f4", copy=False)
        return matrix


def _retry_after(error: ChatgateError) -> float:
    header = error.headers.get("retry-after")
    try:
        return min(30.0, max(0.1, float(header))) if header else 1.0
    except ValueError:
        return 1.0
