"""Reading an upstream's chat stream: its events parsed (comments and ``[DONE]`` handled, an error
event raised), the answer's text and usage tallied as they pass, a stream that breaks before it
finished raised as such; and several streams read at once as one (``n`` asked of an engine that
answers one choice per request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from chatgate.protocol import CompletionUsage, UpstreamError, UpstreamTimeoutError
from chatgate.providers.upstream import broken, stream_error

__all__ = ["Tally", "events", "in_turn", "interleave"]


@dataclass(slots=True)
class Tally:
    """What one upstream stream said: its text (counted if it sends no usage), and its usage."""

    written: list[str] = field(default_factory=list)
    usage: CompletionUsage | None = None


async def events(
    response: aiohttp.ClientResponse, tally: Tally, scrub: Callable[[str], str]
) -> AsyncIterator[dict[str, Any]]:
    """The stream's chunks, usage-only ones included."""
    finished = done = False
    try:
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue  # comments, event names, blank separators
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            chunk: dict[str, Any] = orjson.loads(data)
            if "error" in chunk and "choices" not in chunk:
                raise stream_error(chunk["error"], scrub)
            choices = chunk.get("choices") or ()
            finished = finished or any(c.get("finish_reason") for c in choices)
            for choice in choices:
                _collect(choice.get("delta") or {}, tally.written)
            if chunk.get("usage"):
                tally.usage = chunk["usage"]
            yield chunk
    except TimeoutError as exc:
        raise UpstreamTimeoutError("The upstream stopped streaming.") from exc
    except aiohttp.ClientError as exc:
        raise broken(exc) from exc
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(
            "The upstream sent a malformed stream event.", status=502, error_type="api_error"
        ) from exc
    finally:
        if finished or done:
            response.release()
        else:
            response.close()  # a broken connection is never handed to the next request
    if done and not finished:
        raise UpstreamError(
            "The upstream ended the stream before the answer finished (llama-cpp-python's server "
            "does so to a stream when another request arrives, unless started with "
            "`--interrupt_requests false`).",
            status=502,
            error_type="api_error",
            code="upstream_disconnected",
        )
    if not finished:  # a clean end without [DONE] is accepted once the answer finished
        raise broken(None)


_END = object()


async def interleave(
    streams: list[AsyncIterator[dict[str, Any]]],
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Every stream's chunks as they come, tagged with the stream's index; the first failure
    ends them all."""
    queue: asyncio.Queue[tuple[int, Any, BaseException | None]] = asyncio.Queue(maxsize=64)

    async def pump(index: int, stream: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk, None))
        except Exception as exc:
            await queue.put((index, None, exc))
        else:
            await queue.put((index, _END, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, chunk, error = await queue.get()
            if error is not None:
                raise error
            if chunk is _END:
                running -= 1
                continue
            yield index, chunk
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def in_turn(
    streams: list[AsyncIterator[dict[str, Any]]],
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Every stream's chunks, one stream after the other, tagged with the stream's index (for an
    engine that serves one request at a time, and cuts a stream short when another arrives)."""
    for index, stream in enumerate(streams):
        async for chunk in stream:
            yield index, chunk


def _collect(delta: dict[str, Any], written: list[str]) -> None:
    """The text a stream's delta adds (content, refusal, tool-call names and arguments)."""
    for name in ("content", "refusal"):
        value = delta.get(name)
        if isinstance(value, str):
            written.append(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") or {}
        for name in ("name", "arguments"):
            value = function.get(name)
            if isinstance(value, str):
                written.append(value)
