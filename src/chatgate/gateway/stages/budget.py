"""Budgets per key and per owner (daily, monthly, total), enforced by reservation: the most a
request could cost is reserved before it runs and settled to its real cost after, so concurrent
requests cannot overspend beyond what is in flight. Settled spend is written to the store in
batches, off the request path."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from chatgate.budgets import BudgetCounters, BudgetsUnavailable
from chatgate.config import BudgetsConfig, BudgetSpec, LimitsConfig
from chatgate.gateway.context import AnyContext, Next
from chatgate.gateway.degraded import canned
from chatgate.gateway.operations import CHAT
from chatgate.gateway.streams import ChunkStream, peek
from chatgate.protocol import (
    ChatCompletionChunk,
    ChatgateError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from chatgate.state.spend import SpendStore
from chatgate.tasks import stop_task

__all__ = ["BudgetStage", "InsufficientQuotaError", "periods"]

log = logging.getLogger("chatgate.budgets")

_FLUSH_EVERY = 1.0


class InsufficientQuotaError(ChatgateError):
    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"


def periods(now: datetime.datetime) -> dict[str, str]:
    """The current period of each kind of cap (UTC)."""
    return {"daily": f"d:{now:%Y-%m-%d}", "monthly": f"m:{now:%Y-%m}", "total": "total"}


def _caps(scope: str, spec: BudgetSpec | dict[str, float] | None) -> list[tuple[str, float]]:
    if spec is None:
        return []
    values = spec.model_dump() if isinstance(spec, BudgetSpec) else spec
    current = periods(datetime.datetime.now(datetime.UTC))
    return [
        (f"{scope}|{current[kind]}", float(cap))
        for kind, cap in values.items()
        if cap is not None and kind in current
    ]


class BudgetStage:
    name = "budget"
    operations = None

    def __init__(
        self,
        counters: BudgetCounters,
        spend: SpendStore,
        config: BudgetsConfig,
        limits: LimitsConfig,
    ):
        self._counters = counters
        self._spend = spend
        self._config = config
        self._reserve_tokens = limits.completion_reserve
        self._pending: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._task: asyncio.Task[None] | None = None

    def caps(self, ctx: AnyContext) -> list[tuple[str, float]]:
        key = ctx.principal.key
        if key is None:
            return []
        caps = _caps(f"key:{key.id}", key.budget or self._config.key_default)
        if key.owner:
            owner = self._config.owners.get(key.owner, self._config.owner_default)
            caps += _caps(f"owner:{key.owner}", owner)
        return caps

    async def __call__(self, ctx: AnyContext, call_next: Next) -> Any:
        caps = self.caps(ctx)
        if not caps:
            return await call_next(ctx)
        price = ctx.model.most_expensive
        if price is None:
            raise PermissionDeniedError(
                f"`{ctx.model.name}` has no price, so a budget cannot be enforced on it; set "
                "`pricing` for the model.",
                code="unpriced_model",
            )
        completion = ctx.output_reserve(self._reserve_tokens)
        reserved = price.most(await ctx.prompt_tokens(), completion)
        names = [name for name, _ in caps]
        try:
            refused = await self._counters.reserve(caps, reserved, self._load)
        except BudgetsUnavailable as exc:
            log.error("budget backend unavailable, refusing: %s", exc)
            raise ServiceUnavailableError(
                "Budgets cannot be checked right now; retry shortly.", code="budgets_unavailable"
            ) from None
        if refused is not None:
            degraded = await canned(ctx, "quota") if ctx.op is CHAT else None
            if degraded is not None:
                return degraded
            scope, _, period = refused.rpartition("|")
            raise InsufficientQuotaError(
                f"The budget of {scope} for {period} ({self._config.currency}) is spent, or "
                f"would be by this request (up to {reserved:.6f}). Raise it or wait for the "
                "next period."
            )
        try:
            outcome = await call_next(ctx)
        except BaseException:
            await self._settle(ctx, names, reserved, 0.0)
            raise
        if isinstance(outcome, ChunkStream):
            return await peek(self._settled(outcome, ctx, names, reserved))
        await self._settle(ctx, names, reserved, ctx.cost())
        return outcome

    async def _settled(
        self, chunks: ChunkStream, ctx: AnyContext, names: list[str], reserved: float
    ) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()
            await self._settle(ctx, names, reserved, ctx.cost())

    async def _settle(
        self, ctx: AnyContext, names: list[str], reserved: float, actual: float | None
    ) -> None:
        spent = reserved if actual is None else actual  # unknown usage: keep the reservation
        try:
            await self._counters.settle(names, spent - reserved)
        except BudgetsUnavailable as exc:
            log.error("could not settle request %s against its budget: %s", ctx.request_id, exc)
        for name in names:
            scope, _, period = name.rpartition("|")
            self._pending[(scope, period)] += spent

    async def _load(self, names: list[str]) -> dict[str, float]:
        by_scope: defaultdict[str, list[str]] = defaultdict(list)
        for name in names:
            scope, _, period = name.rpartition("|")
            by_scope[scope].append(period)
        loaded: dict[str, float] = {}
        for scope, wanted in by_scope.items():
            amounts = await self._spend.get(scope, wanted)
            loaded.update({f"{scope}|{period}": amount for period, amount in amounts.items()})
        return loaded

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flusher(), name="chatgate-spend-flush")

    async def close(self) -> None:
        await stop_task(self._task)
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(float)
        if not pending:
            return
        try:
            await self._spend.add((s, p, amount) for (s, p), amount in pending.items())
        except Exception:
            log.exception("could not record spend; keeping it for the next flush")
            for entry, amount in pending.items():
                self._pending[entry] += amount

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            await self.flush()
