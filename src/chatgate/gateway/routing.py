"""Where a request goes: a deployment of the model (balanced, behind its circuit breaker), retried
with backoff on transient failures, then the model's fallbacks in order, then — if the operator
enabled it — a canned answer. Nothing is retried once a stream has reached the client: streams
are peeked, and only a failure before the first chunk comes back here."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from chatgate.config import RoutingConfig
from chatgate.gateway.context import ChatContext, Outcome, chat_call
from chatgate.gateway.degraded import canned
from chatgate.gateway.registry import Deployment, ModelGroup, ModelRegistry
from chatgate.gateway.streams import ChunkStream, peek
from chatgate.protocol import (
    ChatCompletionChunk,
    ChatgateError,
    OverloadedError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)

__all__ = ["MODEL_HEADER", "Router", "SlowFirstTokenError", "retryable"]

MODEL_HEADER = "x-chatgate-model"
FALLBACK_HEADER = "x-chatgate-fallback"


class SlowFirstTokenError(ChatgateError):
    """The first chunk did not arrive within the model's ``ttft_budget``."""

    status = 504
    type = "timeout"
    default_code = "ttft_budget_exceeded"


def retryable(error: BaseException) -> bool:
    """Transient failures worth another attempt: 429, 5xx, timeouts, overload, unavailability."""
    if isinstance(error, UpstreamError):
        if error.deterministic:  # it would fail the same way again; the upstream is fine
            return False
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(
        error, UpstreamTimeoutError | OverloadedError | ServiceUnavailableError
    ) and not isinstance(error, SlowFirstTokenError)


class Router:
    def __init__(
        self,
        registry: ModelRegistry,
        config: RoutingConfig,
        on_failure: Callable[[str, int], None] | None = None,
    ):
        self._registry = registry
        self._on_failure = on_failure
        self._config = config
        self._jitter = wait_random_exponential(
            multiplier=config.backoff_initial, max=config.backoff_max
        )

    async def __call__(self, ctx: ChatContext) -> Outcome:
        chain = [ctx.model]
        for model_id in ctx.model.fallbacks:
            group = self._registry.resolve(model_id)
            if group not in chain and ctx.principal.may_use_model(group.name, group.aliases):
                chain.append(group)
        error: ChatgateError | None = None
        for group in chain:
            try:
                outcome = await self._model(ctx, group)
            except ChatgateError as exc:
                if not (retryable(exc) or isinstance(exc, SlowFirstTokenError)):
                    raise
                error = exc
                continue
            ctx.response_headers[MODEL_HEADER] = group.name
            if group is not ctx.model:
                ctx.response_headers[FALLBACK_HEADER] = ctx.model.name
            return outcome
        degraded = await canned(ctx, "failure")
        if degraded is not None:
            return degraded
        assert error is not None
        raise error

    def _wait(self, state: RetryCallState) -> float:
        delay = float(self._jitter(state))
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, UpstreamError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._config.backoff_max * 4))
        return delay

    async def _model(self, ctx: ChatContext, group: ModelGroup) -> Outcome:
        tried: set[int] = set()
        # The first attempt runs without tenacity (most requests need no other); a retryable
        # failure hands over to it, replayed as its first attempt so waits and stops are the same.
        try:
            return await self._try(ctx, group, tried)
        except ChatgateError as exc:
            if not retryable(exc) or self._config.retries == 0:
                raise
            first: ChatgateError | None = exc
        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + self._config.retries) | _PastDeadline(ctx, self._wait),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    error, first = first, None
                    raise error
                return await self._try(ctx, group, tried)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _try(self, ctx: ChatContext, group: ModelGroup, tried: set[int]) -> Outcome:
        deployment = self._pick(group, tried)
        tried.add(id(deployment))
        ctx.attempts += 1
        return await self._attempt(ctx, group, deployment)

    def _pick(self, group: ModelGroup, tried: set[int]) -> Deployment:
        open_ = [d for d in group.deployments if d.breaker.available()]
        if not open_:
            wait = min(d.breaker.retry_after() for d in group.deployments)
            raise ServiceUnavailableError(
                f"Every deployment of `{group.name}` is failing (circuit open); retry in "
                f"{math.ceil(wait)}s.",
                code="circuit_open",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        fresh = [d for d in open_ if id(d) not in tried] or open_
        if self._config.strategy == "weighted":
            chosen = random.choices(fresh, weights=[d.config.weight for d in fresh])[0]
        else:
            least = min(d.in_flight / d.config.weight for d in fresh)
            chosen = random.choice([d for d in fresh if d.in_flight / d.config.weight == least])
        chosen.breaker.started()
        return chosen

    async def _attempt(
        self, ctx: ChatContext, group: ModelGroup, deployment: Deployment
    ) -> Outcome:
        provider = deployment.provider
        deployment.in_flight += 1
        budget = group.ttft_budget
        ctx.marks["upstream_start"] = time.monotonic()
        try:
            async with _budget(budget):
                if ctx.stream:
                    stream = await peek(provider.stream(chat_call(ctx)))
                else:
                    outcome = await provider.complete(chat_call(ctx))
        except TimeoutError:
            deployment.in_flight -= 1
            deployment.breaker.failed()
            raise SlowFirstTokenError(
                f"`{group.name}` sent nothing within its {budget}s time-to-first-token budget."
            ) from None
        except ChatgateError as exc:
            deployment.in_flight -= 1
            if self._on_failure is not None:
                self._on_failure(group.name, exc.status_code)
            if retryable(exc):
                deployment.breaker.failed()
            else:
                deployment.breaker.succeeded()  # the upstream answered; the request was bad
            raise
        except BaseException:
            deployment.in_flight -= 1
            raise
        deployment.breaker.succeeded()
        ctx.served_by = deployment
        ctx.price = deployment.price
        ctx.provider = deployment.config.provider
        ctx.marks["first_chunk"] = time.monotonic()
        if not ctx.stream:
            deployment.in_flight -= 1
            ctx.marks["upstream_end"] = ctx.marks["first_chunk"]
            return outcome
        return await peek(_tracked(stream, deployment, ctx))


class _PastDeadline(stop_base):
    """Stop when the next backoff would end after the request's deadline."""

    def __init__(self, ctx: ChatContext, wait: Callable[[RetryCallState], float]):
        self._ctx = ctx
        self._wait = wait

    def __call__(self, state: RetryCallState) -> bool:
        return time.monotonic() + self._wait(state) >= self._ctx.deadline


@contextlib.asynccontextmanager
async def _budget(seconds: float | None) -> AsyncIterator[None]:
    if seconds is None:
        yield
        return
    async with asyncio.timeout(seconds):
        yield


async def _tracked(
    stream: ChunkStream, deployment: Deployment, ctx: ChatContext
) -> AsyncIterator[ChatCompletionChunk]:
    """Pass the stream through; count the deployment busy until it ends, and a mid-stream
    failure against its breaker."""
    try:
        async for chunk in stream:
            yield chunk
    except ChatgateError as exc:
        if retryable(exc):
            deployment.breaker.failed()
        raise
    finally:
        deployment.in_flight -= 1
        ctx.marks["upstream_end"] = time.monotonic()
        await stream.aclose()
