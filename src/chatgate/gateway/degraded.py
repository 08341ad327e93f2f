"""Graceful degradation: a canned answer in proper chat.completion shape, clearly marked."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

from chatgate.gateway.context import ChatContext, Outcome
from chatgate.gateway.streams import peek
from chatgate.protocol import ChatCompletion, ChatCompletionChunk, ChunkDelta

__all__ = ["DEGRADED_HEADER", "canned", "canned_outcome"]

DEGRADED_HEADER = "x-chatgate-degraded"


async def canned(ctx: ChatContext, reason: str) -> Outcome | None:
    """The model's configured canned answer (``reason``: ``failure`` or ``quota``), or None."""
    config = ctx.model.degraded_response
    if config is None or not (config.on_failure if reason == "failure" else config.on_quota):
        return None
    ctx.response_headers[DEGRADED_HEADER] = reason
    ctx.response_headers["x-chatgate-model"] = ctx.model.name
    return await canned_outcome(ctx, config.content, "stop", "degraded")


async def canned_outcome(ctx: ChatContext, content: str, finish: str, kind: str) -> Outcome:
    """An answer chatgate writes itself (no model call), as a completion or a stream."""
    identity = f"chatcmpl-{kind}-{secrets.token_hex(8)}"
    created = int(time.time())
    if not ctx.stream:
        completion: ChatCompletion = {
            "id": identity,
            "object": "chat.completion",
            "created": created,
            "model": ctx.model.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        return completion
    return await peek(_chunks(ctx, identity, created, content, finish))


async def _chunks(
    ctx: ChatContext, identity: str, created: int, content: str, finish: str
) -> AsyncIterator[ChatCompletionChunk]:
    def chunk(delta: ChunkDelta, finish: str | None) -> ChatCompletionChunk:
        out: ChatCompletionChunk = {
            "id": identity,
            "object": "chat.completion.chunk",
            "created": created,
            "model": ctx.model.name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if ctx.request.include_usage_chunk:
            out["usage"] = None
        return out

    yield chunk({"role": "assistant", "content": ""}, None)
    yield chunk({"content": content}, None)
    yield chunk({}, finish)
    if ctx.request.include_usage_chunk:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        yield final
