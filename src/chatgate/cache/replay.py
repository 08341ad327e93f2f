"""Between the two forms of an answer: a completion assembled from stream chunks (to cache it),
and chunks replayed from a cached completion (to stream a hit)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from chatgate.protocol import ChatCompletion, ChatCompletionChunk, Choice, CompletionUsage

__all__ = ["as_hit", "assemble", "replay"]


def assemble(
    chunks: Iterable[ChatCompletionChunk], usage: CompletionUsage | None
) -> ChatCompletion:
    """The ``chat.completion`` a stream amounts to."""
    first: ChatCompletionChunk | None = None
    texts: dict[int, list[str]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    logprobs: dict[int, list[Any]] = {}
    finish: dict[int, str] = {}
    for chunk in chunks:
        first = first or chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            index = choice["index"]
            delta = choice["delta"]
            texts.setdefault(index, [])
            if delta.get("content"):
                texts[index].append(delta["content"] or "")
            for call in delta.get("tool_calls") or ():
                empty = {"type": "function", "function": {"name": "", "arguments": ""}}
                slot = calls.setdefault(index, {}).setdefault(call.get("index", 0), empty)
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            choice_logprobs = choice.get("logprobs")
            entries = choice_logprobs["content"] if choice_logprobs else None
            if entries:
                logprobs.setdefault(index, []).extend(entries)
            reason = choice.get("finish_reason")
            if reason:
                finish[index] = reason
    assert first is not None, "an empty stream has no completion"
    choices: list[Choice] = []
    for index in sorted(texts):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts[index]) if texts[index] or index not in calls else None,
            "refusal": None,
        }
        if index in calls:
            message["tool_calls"] = [calls[index][i] for i in sorted(calls[index])]
        lp = {"content": logprobs[index], "refusal": None} if index in logprobs else None
        entry = {
            "index": index,
            "message": message,
            "logprobs": lp,
            "finish_reason": finish.get(index, "stop"),
        }
        choices.append(entry)  # type: ignore[arg-type]
    completion: ChatCompletion = {
        "id": first["id"],
        "object": "chat.completion",
        "created": first["created"],
        "model": first["model"],
        "choices": choices,
    }
    if usage:
        completion["usage"] = usage
    return completion


def as_hit(cached: ChatCompletion) -> ChatCompletion:
    """A cached answer as a new response: fresh id and time, usage marked as cached."""
    hit: ChatCompletion = {**cached}
    hit["id"] = f"chatcmpl-{secrets.token_hex(12)}"
    hit["created"] = int(time.time())
    usage = cached.get("usage")
    if usage:
        hit["usage"] = {
            **usage,
            "prompt_tokens_details": {
                **(usage.get("prompt_tokens_details") or {}),
                "cached_tokens": usage["prompt_tokens"],
            },
        }
    return hit


def _chunk(
    base: dict[str, Any],
    index: int,
    delta: dict[str, Any],
    finish: str | None = None,
    logprobs: Any = None,
) -> ChatCompletionChunk:
    choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    chunk: ChatCompletionChunk = {**base, "choices": [choice]}  # type: ignore[typeddict-item]
    return chunk


async def replay(
    completion: ChatCompletion, *, include_usage: bool
) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks of a proper SSE stream for a completion: a role chunk, the content, the finish,
    and (when asked) the usage chunk."""
    base: dict[str, Any] = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }
    if include_usage:
        base["usage"] = None
    for choice in completion["choices"]:
        index = choice["index"]
        message = choice["message"]
        yield _chunk(base, index, {"role": "assistant", "content": ""})
        if message.get("content"):
            yield _chunk(base, index, {"content": message["content"]}, None, choice["logprobs"])
        if message.get("tool_calls"):
            calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            yield _chunk(base, index, {"tool_calls": calls})
        yield _chunk(base, index, {}, choice["finish_reason"])
    if include_usage and completion.get("usage"):
        final: ChatCompletionChunk = {**base, "choices": [], "usage": completion["usage"]}  # type: ignore[typeddict-item]
        yield final
