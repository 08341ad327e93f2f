"""Chunk streams that have been peeked: the first chunk arrived before the response committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from chatgate.protocol import ChatCompletionChunk, UpstreamTimeoutError

__all__ = ["ChunkStream", "peek", "with_deadline"]


class ChunkStream:
    """An async iterator of chunks whose first chunk is already in hand.

    Errors before the first chunk were raised by :func:`peek`, so the API can still answer
    with a proper HTTP status; errors after it surface while iterating.
    """

    def __init__(self, first: ChatCompletionChunk | None, rest: AsyncIterator[ChatCompletionChunk]):
        self._first = first
        self._rest = rest

    def __aiter__(self) -> ChunkStream:
        return self

    def with_first(self, change: Callable[[ChatCompletionChunk], ChatCompletionChunk]) -> None:
        """Replace the first chunk with ``change(first)`` (a copy: chunks may be shared by
        coalesced requests)."""
        if self._first is not None:
            self._first = change(self._first)

    async def __anext__(self) -> ChatCompletionChunk:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._rest.__anext__()

    async def aclose(self) -> None:
        closer = getattr(self._rest, "aclose", None)
        if closer is not None:
            await closer()


async def peek(chunks: AsyncIterator[ChatCompletionChunk]) -> ChunkStream:
    """Wait for the first chunk so that an early failure raises here, before any byte is sent."""
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        return ChunkStream(None, chunks)
    except BaseException:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
        raise
    return ChunkStream(first, chunks)


async def with_deadline(
    chunks: AsyncIterator[ChatCompletionChunk], deadline: float
) -> AsyncIterator[ChatCompletionChunk]:
    """Pass chunks through until ``deadline`` (monotonic); then fail with a 504."""
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeoutError("The request took longer than its time limit.") from None
            yield chunk
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
