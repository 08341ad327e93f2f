"""Rate limits per key, owner, model and globally; waiting for capacity by priority; settlement of
reserved tokens to actual usage when the response (or stream) ends."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from chatgate.config import LimitsConfig, LimitSpec
from chatgate.gateway.context import AnyContext, Next
from chatgate.gateway.degraded import canned
from chatgate.gateway.operations import CHAT
from chatgate.gateway.streams import ChunkStream, peek
from chatgate.limits import (
    Decision,
    Limiter,
    LimiterUnavailable,
    ScopeLimit,
    rate_limit_headers,
)
from chatgate.limits.waiting import PRIORITY_NAMES, PriorityGate
from chatgate.protocol import (
    ChatCompletionChunk,
    RequestTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
)

__all__ = ["PRIORITY_HEADER", "RateLimitStage"]

log = logging.getLogger("chatgate.limits")

PRIORITY_HEADER = "x-chatgate-priority"
"""``critical``, ``normal`` or ``low``: the order in which waiting requests are served (capped
by the key's own priority)."""


def _scope(name: str, spec: LimitSpec | dict[str, int] | None) -> ScopeLimit | None:
    if spec is None:
        return None
    values = spec.model_dump() if isinstance(spec, LimitSpec) else spec
    limit = ScopeLimit(name, values.get("rpm"), values.get("tpm"), values.get("concurrent"))
    return None if limit.empty else limit


class RateLimitStage:
    name = "rate_limit"
    operations = None

    def __init__(self, limiter: Limiter, config: LimitsConfig, gate: PriorityGate):
        self._limiter = limiter
        self._config = config
        self.gate = gate
        self.backend_errors = 0

    def limits(self, ctx: AnyContext) -> list[ScopeLimit]:
        config = self._config
        key = ctx.principal.key
        candidates = [
            _scope("global", config.global_),
            _scope(f"model:{ctx.model.name}", config.models.get(ctx.model.name)),
        ]
        if key is not None and key.owner:
            owner_spec = config.owners.get(key.owner, config.owner_default)
            candidates.append(_scope(f"owner:{key.owner}", owner_spec))
        if key is not None:
            candidates.append(_scope(f"key:{key.id}", key.limits or config.key_default))
        return [c for c in candidates if c is not None]

    def priority(self, ctx: AnyContext, asked: str | None) -> int:
        key = ctx.principal.key
        ceiling = PRIORITY_NAMES.index(key.priority) if key and key.priority else 1
        if ctx.principal.key is None:
            ceiling = 0  # master key or open mode: may ask for anything
        wanted = PRIORITY_NAMES.index(asked) if asked in PRIORITY_NAMES else max(ceiling, 1)
        return max(wanted, ceiling)

    async def __call__(self, ctx: AnyContext, call_next: Next) -> Any:
        ctx.priority = self.priority(ctx, ctx.headers.get(PRIORITY_HEADER))
        limits = self.limits(ctx)
        if not limits:
            return await call_next(ctx)
        tokens = await self._reservation(ctx)
        lease = max(1.0, ctx.deadline - time.monotonic())
        rid = ctx.request_id

        async def attempt() -> Decision:
            return await self._acquire(rid, limits, tokens, lease)

        started = time.monotonic()
        if self.gate.ahead(ctx.priority):
            decision = Decision(False, 0.0, None, ())  # others wait already: queue behind them
        else:
            decision = await attempt()
        key = ctx.principal.key
        wait = self._config.queue_timeout
        if key is not None and key.queue_timeout is not None:
            wait = key.queue_timeout
        if not decision.admitted and not decision.never and wait > 0:
            until = min(ctx.deadline, time.monotonic() + wait)
            decision = await self.gate.wait(ctx.priority, attempt, decision, until)
        ctx.timings["limit"] = time.monotonic() - started
        headers = rate_limit_headers(decision)
        if not decision.admitted:
            degraded = await canned(ctx, "quota") if ctx.op is CHAT else None
            if degraded is not None:
                return degraded
            refusal = RequestTooLargeError if decision.never else TooManyRequestsError
            raise refusal(_refusal_message(decision, tokens), headers=headers)
        ctx.response_headers.update(headers)
        try:
            outcome = await call_next(ctx)
        except BaseException:
            await self._finish(rid, limits, 0)
            raise
        if isinstance(outcome, ChunkStream):
            return await peek(self._settled(outcome, ctx, rid, limits, tokens))
        usage = ctx.stats.usage or (outcome.get("usage") if isinstance(outcome, dict) else None)
        used = usage["total_tokens"] if usage else tokens
        await self._finish(rid, limits, 0 if ctx.served_from else used)
        return outcome

    async def _reservation(self, ctx: AnyContext) -> int:
        prompt = await ctx.prompt_tokens()
        return prompt + ctx.output_reserve(self._config.completion_reserve)

    async def _acquire(
        self, rid: str, limits: list[ScopeLimit], tokens: int, lease: float
    ) -> Decision:
        try:
            return await self._limiter.acquire(rid, limits, tokens, lease)
        except LimiterUnavailable as exc:
            self.backend_errors += 1
            if self._config.on_backend_error == "open":
                log.warning("rate limiter unavailable, admitting (fail-open): %s", exc)
                return Decision(True, 0.0, None, ())
            log.error("rate limiter unavailable, refusing (fail-closed): %s", exc)
            raise ServiceUnavailableError(
                "The rate limiter is unavailable; retry shortly.", code="rate_limiter_unavailable"
            ) from None

    async def _settled(
        self,
        chunks: ChunkStream,
        ctx: AnyContext,
        rid: str,
        limits: list[ScopeLimit],
        reserved: int,
    ) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()
            usage = ctx.stats.usage
            used = usage["total_tokens"] if usage else reserved
            await self._finish(rid, limits, 0 if ctx.served_from else used)

    async def _finish(self, rid: str, limits: list[ScopeLimit], tokens: int) -> None:
        try:
            await self._limiter.finish(rid, limits, tokens)
        except LimiterUnavailable as exc:
            self.backend_errors += 1
            log.warning("could not settle request %s with the rate limiter: %s", rid, exc)
        self.gate.notify()


def _refusal_message(decision: Decision, tokens: int) -> str:
    scope, _, dimension = (decision.refused_by or "limit:?").rpartition(":")
    what = {"rpm": "requests", "tpm": "tokens", "concurrent": "concurrent requests"}
    if decision.never:
        return (
            f"Request too large for the tokens-per-minute limit on {scope}: it needs {tokens} "
            "tokens. Reduce the prompt or max_tokens."
        )
    wait = math.ceil(decision.retry_after) if decision.retry_after >= 1 else 1
    return (
        f"Rate limit reached for {what.get(dimension, dimension)} on {scope}. "
        f"Please try again in {wait}s."
    )
