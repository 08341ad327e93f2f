"""The response cache and in-flight de-duplication.

A deterministic request (temperature 0, or a seed — or any request that says
``x-chatgate-cache: use``) is looked up by a canonical hash of what shapes the answer. On a miss,
identical requests arriving while the first is still running join its *flight*: one upstream call
runs in a task of its own, every joined client gets the same answer — for streams, the same chunks
as they arrive — and a client that leaves does not cancel the others. The stream is copied (not
held back) to fill the cache when it ends.

With ``cache.semantic`` on, an exact miss then looks for an answer to a prompt that *means* the
same (``cache/semantic.py``: same model, parameters and non-user messages, per key; the user
text's embedding within the threshold, and guards against near-misses); answers stored are
added to that index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import orjson

from chatgate.cache import (
    CacheUnavailable,
    ResponseCache,
    as_hit,
    assemble,
    cache_key,
    deterministic,
    replay,
)
from chatgate.cache.keys import partition_key, user_text
from chatgate.cache.semantic import SemanticIndex
from chatgate.config import CacheConfig
from chatgate.gateway.context import ChatContext, ChatNext, Outcome
from chatgate.gateway.operations import CHAT_ONLY
from chatgate.gateway.streams import ChunkStream, peek
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    InvalidRequestError,
    UpstreamTimeoutError,
)

__all__ = ["CACHE_HEADER", "CacheStage", "Flight"]

log = logging.getLogger("chatgate.cache")

CACHE_HEADER = "x-chatgate-cache"
TTL_HEADER = "x-chatgate-cache-ttl"
COALESCED_HEADER = "x-chatgate-coalesced"
SIMILARITY_HEADER = "x-chatgate-cache-similarity"


class Flight:
    """One upstream call shared by every identical request that arrived while it ran."""

    def __init__(self, key: str, ttl: float, name: str, semantic: _Semantic | None = None) -> None:
        self.key = key
        self.semantic = semantic
        """Where the answer goes in the semantic index, once stored."""
        """The cache key its answer is stored under."""
        self.ttl = ttl
        self.name = name
        """Its entry among the flights in progress (the key, the stream flag, the usage flag)."""
        self.chunks: list[ChatCompletionChunk] = []
        self.completion: ChatCompletion | None = None
        self.error: BaseException | None = None
        self.done = False
        self.subscribers = 0
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def push(self, chunk: ChatCompletionChunk) -> None:
        self.chunks.append(chunk)
        self._notify()

    def finish(self, completion: ChatCompletion | None, error: BaseException | None) -> None:
        self.completion, self.error, self.done = completion, error, True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _leave(self) -> None:
        self.subscribers -= 1
        if self.subscribers == 0 and not self.done and self.task is not None:
            self.task.cancel()  # nobody is listening any more

    async def answer(self) -> ChatCompletion:
        self.subscribers += 1
        try:
            while not self.done:
                await self._changed.wait()
        finally:
            self._leave()
        if self.error is not None:
            raise self.error
        assert self.completion is not None
        return self.completion

    async def follow(self) -> AsyncIterator[ChatCompletionChunk]:
        self.subscribers += 1
        sent = 0
        try:
            while True:
                while sent < len(self.chunks):
                    yield self.chunks[sent]
                    sent += 1
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return
                await self._changed.wait()
        finally:
            self._leave()


@dataclass(frozen=True, slots=True)
class _Semantic:
    partition: str
    vector: np.ndarray
    text: str


Embed = Callable[[str], Awaitable[np.ndarray]]
"""A text's unit embedding (the semantic cache's model)."""


class CacheStage:
    name = "cache"
    operations = CHAT_ONLY

    def __init__(self, cache: ResponseCache, config: CacheConfig, embed: Embed | None = None):
        self._cache = cache
        self._config = config
        self._flights: dict[str, Flight] = {}
        self.hits = self.misses = self.coalesced = self.errors = self.semantic_hits = 0
        self._embed = embed if config.semantic else None
        self.semantic = SemanticIndex(config.semantic_threshold, config.semantic_max_entries)

    async def _semantic(self, ctx: ChatContext, scope: str) -> _Semantic | None:
        if self._embed is None:
            return None
        text = user_text(ctx.request)
        if not text.strip():
            return None
        try:
            vector = await self._embed(text)
        except Exception as exc:  # the cache is an optimisation: answer without it
            self.errors += 1
            log.warning("semantic cache: embedding failed, going without: %s", exc)
            return None
        return _Semantic(partition_key(ctx.model.name, ctx.request, scope), vector, text)

    async def __call__(self, ctx: ChatContext, call_next: ChatNext) -> Outcome:
        mode = ctx.headers.get(CACHE_HEADER, "").strip().lower()
        if mode not in ("", "use", "refresh", "bypass"):
            raise InvalidRequestError(
                f"`{CACHE_HEADER}` must be use, refresh or bypass.", param=CACHE_HEADER
            )
        if (
            not self._config.enabled
            or mode == "bypass"
            or (not mode and not deterministic(ctx.request))
        ):
            ctx.response_headers[CACHE_HEADER] = "bypass"
            return await call_next(ctx)
        scope = "shared" if self._config.scope == "shared" else ctx.principal.actor
        key = cache_key(ctx.model.name, ctx.request, scope)
        ttl = _ttl(ctx.headers.get(TTL_HEADER), self._config.ttl)
        if mode != "refresh":
            cached = await self._get(key)
            if cached is not None:
                self.hits += 1
                return await self._serve(ctx, cached, "hit")
        semantic = await self._semantic(ctx, scope)
        if semantic is not None and mode != "refresh":
            found = self.semantic.lookup(semantic.partition, semantic.vector, semantic.text)
            cached = await self._get(found[0]) if found is not None else None
            if found is not None and cached is not None:
                self.hits += 1
                self.semantic_hits += 1
                ctx.response_headers[SIMILARITY_HEADER] = f"{found[1]:.4f}"
                return await self._serve(ctx, cached, "semantic-hit")
        self.misses += 1
        ctx.response_headers[CACHE_HEADER] = "miss"
        flight_key = f"{key}:{ctx.stream}:{ctx.request.include_usage_chunk}"
        flight = self._flights.get(flight_key) if self._config.coalesce else None
        if flight is None:
            flight = Flight(key, ttl, flight_key, semantic)
            if self._config.coalesce:
                self._flights[flight_key] = flight
            flight.task = asyncio.create_task(self._pump(ctx, call_next, flight))
        else:
            self.coalesced += 1
            ctx.served_from = "coalesced"
            ctx.response_headers[COALESCED_HEADER] = "true"
        if ctx.stream:
            return await peek(flight.follow())
        return await flight.answer()

    async def _pump(self, ctx: ChatContext, call_next: ChatNext, flight: Flight) -> None:
        completion: ChatCompletion | None = None
        error: BaseException | None = None
        try:
            async with asyncio.timeout(max(0.0, ctx.deadline - time.monotonic())):
                outcome = await call_next(ctx)
                if isinstance(outcome, ChunkStream):
                    async with contextlib.aclosing(outcome) as chunks:
                        async for chunk in chunks:
                            flight.push(chunk)
                    completion = assemble(flight.chunks, ctx.stats.usage)
                else:
                    completion = outcome
        except TimeoutError:
            error = UpstreamTimeoutError("The request took longer than its time limit.")
        except asyncio.CancelledError:
            error = UpstreamTimeoutError("Every client of this request went away.")
            raise
        except Exception as exc:
            error = exc
        finally:
            if self._flights.get(flight.name) is flight:
                del self._flights[flight.name]
            flight.finish(completion if error is None else None, error)
        if completion is not None:
            await self._put(flight.key, completion, flight.ttl)
            found = flight.semantic
            if found is not None:
                self.semantic.add(found.partition, found.vector, found.text, flight.key, flight.ttl)

    async def _serve(self, ctx: ChatContext, cached: ChatCompletion, label: str) -> Outcome:
        ctx.served_from = "cache"
        ctx.response_headers[CACHE_HEADER] = label
        hit = as_hit(cached)
        if ctx.stream:
            return await peek(replay(hit, include_usage=ctx.request.include_usage_chunk))
        return hit

    async def _get(self, key: str) -> ChatCompletion | None:
        try:
            raw = await self._cache.get(key)
        except CacheUnavailable as exc:
            self.errors += 1
            log.warning("response cache unavailable, going without: %s", exc)
            return None
        if raw is None:
            return None
        completion: ChatCompletion = orjson.loads(raw)
        return completion

    async def _put(self, key: str, completion: ChatCompletion, ttl: float) -> None:
        try:
            await self._cache.set(key, orjson.dumps(completion), ttl)
        except CacheUnavailable as exc:
            self.errors += 1
            log.warning("response cache unavailable, answer not stored: %s", exc)


def _ttl(header: str | None, default: float) -> float:
    if header is None:
        return default
    try:
        value = float(header)
    except ValueError:
        value = -1
    if not 0 < value <= default:
        raise InvalidRequestError(
            f"`{TTL_HEADER}` must be a number of seconds up to {default:g}.", param=TTL_HEADER
        )
    return value
