"""Bound every request by the server's ``request_timeout``; past it the work is cancelled (504)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chatgate.gateway.context import AnyContext, Next
from chatgate.gateway.streams import ChunkStream, peek, with_deadline
from chatgate.protocol import UpstreamTimeoutError

__all__ = ["DeadlineStage"]


class DeadlineStage:
    name = "deadline"
    operations = None

    async def __call__(self, ctx: AnyContext, call_next: Next) -> Any:
        try:
            async with asyncio.timeout(max(ctx.deadline - time.monotonic(), 0.0)):
                outcome = await call_next(ctx)
        except TimeoutError:
            raise UpstreamTimeoutError(
                "The request took longer than its time limit and was cancelled."
            ) from None
        if isinstance(outcome, ChunkStream):
            return await peek(with_deadline(outcome, ctx.deadline))
        return outcome
