"""Embedding backends behind one interface: the embedded sentence encoder (ONNX Runtime on a
thread of its own) and any OpenAI-compatible ``/embeddings`` upstream.

Both return float32 vectors in a NumPy array; the API layer renders them as floats or base64,
and vector stores keep them as they are.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import numpy as np
import orjson

from chatgate.config import LocalEmbeddingModelConfig, OpenAICompatEmbeddingModelConfig
from chatgate.embeddings.encoder import EncodedBatch, SentenceEncoder
from chatgate.protocol import ChatgateError, InvalidRequestError, OverloadedError, UpstreamError
from chatgate.providers.base import ProviderState
from chatgate.providers.session import upstream_session
from chatgate.providers.upstream import post_upstream, scrub_secret, upstream_headers
from chatgate.tokenizers import encoding_for

__all__ = [
    "EmbeddingProvider",
    "EmbeddingResult",
    "LocalEmbeddingProvider",
    "OpenAICompatEmbeddingProvider",
    "fit_dimensions",
]

log = logging.getLogger("chatgate.providers.embedding")

INTERACTIVE = 0
BACKGROUND = 1
BACKGROUND_GROUP = 16
"""Texts per run of background work (batch lines, ingestion): what an interactive request that
arrives meanwhile may have to wait for."""


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    vectors: np.ndarray
    """float32 ``[inputs, dimensions]``."""
    prompt_tokens: int


class EmbeddingProvider(Protocol):
    @property
    def state(self) -> ProviderState: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def dimensions(self) -> int:
        """The width of the vectors the model returns natively."""
        ...

    async def embed(
        self,
        texts: list[str] | None = None,
        token_arrays: list[list[int]] | None = None,
        *,
        dimensions: int | None = None,
        windows: bool = False,
        priority: int = INTERACTIVE,
        extra: dict[str, Any] | None = None,
    ) -> EmbeddingResult:
        """Embed texts (or token arrays). ``windows``: long texts are embedded whole (window
        average) rather than truncated, where the model has a short window. ``priority``:
        background work (ingestion) yields to interactive requests."""
        ...


def fit_dimensions(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Shorten vectors to ``dimensions`` and normalise them again, as OpenAI's ``dimensions``
    does for its text-embedding-3 models."""
    native = vectors.shape[1]
    if dimensions is None or dimensions == native:
        return vectors
    if dimensions > native:
        raise InvalidRequestError(
            f"This model's embeddings have {native} dimensions; 'dimensions' must be at most "
            f"{native}.",
            param="dimensions",
            code="invalid_value",
        )
    cut = np.ascontiguousarray(vectors[:, :dimensions])
    cut /= np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)
    return cut


@dataclass(slots=True)
class _Job:
    texts: list[str]
    windows: bool
    future: asyncio.Future[EncodedBatch]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.texts)


class LocalEmbeddingProvider:
    """The embedded encoder. Loads in the background as soon as the server starts (a second or
    more: the ONNX graph is built from the weights), so the first request does not wait for it
    unless it comes first. One thread runs the model; requests that arrive while it is busy are
    embedded together in its next run, interactive ones before background ones."""

    def __init__(self, config: LocalEmbeddingModelConfig):
        self._config = config
        self._encoder = SentenceEncoder(
            config.path, threads=config.threads, batch_tokens=config.batch_tokens
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chatgate-embed")
        self._queues: tuple[deque[_Job], deque[_Job]] = (deque(), deque())
        self._queued = 0
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self._loading: asyncio.Task[None] | None = None
        self._cl100k: Any = None

    @property
    def state(self) -> ProviderState:
        return "failed" if self._failed is not None else "ready"

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._runner = asyncio.create_task(self._run(), name="chatgate-embed-runner")
        self._loading = asyncio.create_task(self._load(), name="chatgate-embed-load")
        # A failure is kept in `_failed` and raised to the requests that need the model.
        self._loading.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def close(self) -> None:
        if self._loading is not None:
            await asyncio.gather(self._loading, return_exceptions=True)
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        for queue in self._queues:
            while queue:
                job = queue.popleft()
                if not job.future.done():
                    job.future.set_exception(ChatgateError("The gateway is shutting down."))
        self._executor.shutdown(wait=True)

    async def _loaded(self) -> None:
        if self._encoder.loaded:
            return
        if self._loading is None:  # not started (used outside a server)
            self._loading = asyncio.create_task(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._encoder.load)
        except Exception as exc:
            self._failed = exc
            log.error("embedding model `%s` could not be loaded: %s", self._config.name, exc)
            raise ChatgateError(f"The embedding model could not be loaded: {exc}") from exc
        log.info("embedding model `%s` loaded", self._config.name)

    async def dimensions(self) -> int:
        await self._loaded()
        return self._encoder.dimensions

    async def embed(
        self,
        texts: list[str] | None = None,
        token_arrays: list[list[int]] | None = None,
        *,
        dimensions: int | None = None,
        windows: bool = False,
        priority: int = INTERACTIVE,
        extra: dict[str, Any] | None = None,
    ) -> EmbeddingResult:
        if texts is None:
            texts = self._decode(token_arrays or [])
        if self._wake is None:
            raise ChatgateError("The embedding model is not started.")
        if self._queued + len(texts) > self._config.max_queue:
            raise OverloadedError(
                "The embedding model is busy and its queue is full; retry shortly."
            )
        await self._loaded()
        loop = asyncio.get_running_loop()
        # Background work goes in small groups: an interactive request waits for one at most.
        size = BACKGROUND_GROUP if priority == BACKGROUND else len(texts)
        jobs = [
            _Job(texts[start : start + size], windows, loop.create_future())
            for start in range(0, len(texts), size)
        ]
        for job in jobs:
            self._queues[priority].append(job)
            self._queued += job.size
        self._wake.set()
        batches = await asyncio.gather(*(job.future for job in jobs))
        vectors = (
            batches[0].vectors if len(batches) == 1 else np.vstack([b.vectors for b in batches])
        )
        tokens = sum(sum(b.tokens) for b in batches)
        return EmbeddingResult(fit_dimensions(vectors, dimensions), tokens)

    def _decode(self, arrays: list[list[int]]) -> list[str]:
        # Token arrays are OpenAI token ids: what tiktoken (and LangChain's OpenAIEmbeddings)
        # send for OpenAI's embedding models, which use cl100k_base.
        if self._cl100k is None:
            self._cl100k = encoding_for("cl100k_base")
        limit = self._cl100k.n_vocab
        for i, array in enumerate(arrays):
            if any(token >= limit for token in array):
                raise InvalidRequestError(
                    f"'input[{i}]' holds a token id outside cl100k_base (0..{limit - 1}).",
                    param="input",
                    code="invalid_value",
                )
        return [self._cl100k.decode(array) for array in arrays]

    def _take(self) -> list[_Job]:
        """The next run's jobs: every waiting interactive job of one kind, else one background
        job (background jobs are small groups, so an interactive request waits at most one)."""
        interactive, background = self._queues
        if interactive:
            windows = interactive[0].windows
            jobs = [job for job in interactive if job.windows == windows]
            for job in jobs:
                interactive.remove(job)
            return jobs
        return [background.popleft()] if background else []

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            jobs = self._take()
            if not jobs:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._serve([job for job in jobs if not job.future.cancelled()])
            finally:
                self._queued -= sum(job.size for job in jobs)

    async def _serve(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        texts = [text for job in jobs for text in job.texts]
        windows = jobs[0].windows
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, lambda: self._encoder.encode(texts, windows=windows)
            )
        except Exception as exc:
            error = ChatgateError(f"The embedding model failed: {type(exc).__name__}.")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        start = 0
        for job in jobs:
            end = start + job.size
            if not job.future.done():
                job.future.set_result(
                    EncodedBatch(result.vectors[start:end], result.tokens[start:end])
                )
            start = end


class OpenAICompatEmbeddingProvider:
    """Any OpenAI-compatible ``/embeddings`` upstream; asks for base64 (a quarter of the bytes of
    float JSON) and decodes it once."""

    def __init__(self, config: OpenAICompatEmbeddingModelConfig, api_key: str | None):
        self._config = config
        self._api_key = api_key
        self._url = config.base_url.rstrip("/") + "/embeddings"
        self._upstream_model = config.upstream_model or config.name
        self._headers = upstream_headers(config.headers, api_key)
        self._session: aiohttp.ClientSession | None = None
        self._dimensions = config.dimensions

    @property
    def state(self) -> ProviderState:
        return "ready" if self._session is not None else "loading"

    async def start(self) -> None:
        self._session = upstream_session(
            max_connections=self._config.max_connections,
            connect_timeout=self._config.connect_timeout,
            read_timeout=self._config.read_timeout,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _scrub(self, text: str) -> str:
        return scrub_secret(text, self._api_key)

    async def dimensions(self) -> int:
        if self._dimensions is None:
            probe = await self.embed(["dimensions"])
            self._dimensions = int(probe.vectors.shape[1])
        return self._dimensions

    async def embed(
        self,
        texts: list[str] | None = None,
        token_arrays: list[list[int]] | None = None,
        *,
        dimensions: int | None = None,
        windows: bool = False,
        priority: int = INTERACTIVE,
        extra: dict[str, Any] | None = None,
    ) -> EmbeddingResult:
        if self._session is None:
            raise ChatgateError("The upstream client is not started.")
        inputs = texts if texts is not None else token_arrays
        body: dict[str, Any] = {
            **(extra or {}),
            "model": self._upstream_model,
            "input": inputs,
            "encoding_format": "base64",
        }
        if dimensions is not None:
            body["dimensions"] = dimensions
        response = await post_upstream(
            self._session,
            self._url,
            orjson.dumps(body),
            headers=self._headers,
            client_timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self._config.connect_timeout,
                sock_read=self._config.read_timeout,
            ),
            name=self._config.name,
            scrub=self._scrub,
        )
        try:
            raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(
                f"The upstream for `{self._config.name}` broke off its answer.",
                status=502,
                error_type="api_error",
                code="upstream_disconnected",
            ) from exc
        finally:
            response.release()
        return _parse_upstream(raw, len(inputs or []))


def _parse_upstream(raw: bytes, expected: int) -> EmbeddingResult:
    def bad(why: str) -> UpstreamError:
        return UpstreamError(
            f"The upstream sent an embeddings answer chatgate cannot read ({why}).",
            status=502,
            error_type="api_error",
            code="upstream_invalid_response",
        )

    try:
        payload = orjson.loads(raw)
        items = sorted(payload["data"], key=lambda item: item["index"])
        rows: list[np.ndarray] = []
        for item in items:
            value = item["embedding"]
            if isinstance(value, str):
                rows.append(np.frombuffer(base64.b64decode(value), dtype="<f4"))
            else:
                rows.append(np.asarray(value, dtype=np.float32))
        usage = payload.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise bad(type(exc).__name__) from exc
    if len(rows) != expected or len({row.shape for row in rows}) > 1:
        raise bad("wrong number or width of vectors")
    vectors = np.vstack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 0))
    return EmbeddingResult(vectors, tokens)
