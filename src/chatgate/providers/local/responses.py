"""Turn generation events into ``chat.completion`` objects and ``chat.completion.chunk``s."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
    Logprobs,
    ResponseMessage,
    TokenLogprob,
)
from chatgate.providers.base import ChatCall
from chatgate.providers.local.engine import Finished, Text

__all__ = ["ChunkBuilder", "CompletionBuilder", "parse_tool_call"]


def _completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def parse_tool_call(text: str) -> dict[str, Any] | None:
    """A tool call object if ``text`` is the model's ``{"name", "arguments"}`` JSON."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    return {
        "id": f"call_{secrets.token_hex(12)}",
        "type": "function",
        "function": {"name": value["name"], "arguments": orjson.dumps(arguments).decode()},
    }


def _usage(prompt: int, completion: int) -> CompletionUsage:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


class CompletionBuilder:
    """Collects every choice of a non-streaming call."""

    def __init__(self, call: ChatCall, model: str, tool_mode: bool):
        self._call = call
        self._model = model
        self._tool_mode = tool_mode
        n = call.request.choice_count
        self._text: list[list[str]] = [[] for _ in range(n)]
        self._logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        self._finish: list[str] = ["stop"] * n
        self._completion_tokens = 0

    def add(self, event: Text | Finished) -> None:
        if isinstance(event, Text):
            self._text[event.choice].append(event.text)
            if event.logprobs:
                self._logprobs[event.choice].extend(event.logprobs)
        else:
            self._finish[event.choice] = event.finish_reason
            self._completion_tokens += event.completion_tokens

    def build(self, prompt_tokens: int) -> ChatCompletion:
        want_logprobs = bool(self._call.request.logprobs)
        choices: list[Choice] = []
        for i, parts in enumerate(self._text):
            text = "".join(parts)
            message: ResponseMessage = {"role": "assistant", "content": text, "refusal": None}
            finish = self._finish[i]
            call = parse_tool_call(text) if self._tool_mode and finish == "stop" else None
            if call is not None:
                message = {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [call],
                }
                finish = "tool_calls"
            logprobs: Logprobs | None = None
            if want_logprobs and call is None:  # an answer in text, tools or not
                logprobs = {"content": self._logprobs[i], "refusal": None}
            choices.append(
                {"index": i, "message": message, "logprobs": logprobs, "finish_reason": finish}
            )
        return {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": self._call.created,
            "model": self._model,
            "choices": choices,
            "usage": _usage(prompt_tokens, self._completion_tokens),
        }


class ChunkBuilder:
    """Makes the chunks of a streaming call; buffers a choice only in tool mode."""

    def __init__(self, call: ChatCall, model: str, tool_mode: bool):
        self._id = _completion_id()
        self._created = call.created
        self._model = model
        self._tool_mode = tool_mode
        self._logprobs = bool(call.request.logprobs)
        self._usage_field = call.request.include_usage_chunk
        self._started: set[int] = set()
        self._buffer: dict[int, list[str]] = {}
        self._buffered_logprobs: dict[int, list[TokenLogprob]] = {}
        self._completion_tokens = 0

    def _chunk(self, choices: list[ChunkChoice]) -> ChatCompletionChunk:
        chunk: ChatCompletionChunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._usage_field:
            chunk["usage"] = None
        return chunk

    def _choice(
        self,
        index: int,
        delta: ChunkDelta,
        finish: str | None = None,
        logprobs: list[TokenLogprob] | None = None,
    ) -> ChatCompletionChunk:
        lp: Logprobs | None = {"content": logprobs, "refusal": None} if logprobs else None
        return self._chunk(
            [{"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}]
        )

    def role(self, index: int) -> ChatCompletionChunk:
        self._started.add(index)
        return self._choice(index, {"role": "assistant", "content": "", "refusal": None})

    def add(self, event: Text | Finished) -> list[ChatCompletionChunk]:
        out = [] if event.choice in self._started else [self.role(event.choice)]
        if isinstance(event, Text):
            if self._tool_mode:
                self._buffer.setdefault(event.choice, []).append(event.text)
                if event.logprobs and self._logprobs:
                    self._buffered_logprobs.setdefault(event.choice, []).extend(event.logprobs)
            elif event.text or event.logprobs:
                logprobs = event.logprobs if self._logprobs else None
                out.append(self._choice(event.choice, {"content": event.text}, None, logprobs))
            return out
        self._completion_tokens += event.completion_tokens
        finish = event.finish_reason
        if self._tool_mode:
            text = "".join(self._buffer.pop(event.choice, []))
            logprobs = self._buffered_logprobs.pop(event.choice, None)
            call = parse_tool_call(text) if finish == "stop" else None
            if call is not None:
                out.append(self._choice(event.choice, {"tool_calls": [{"index": 0, **call}]}))
                finish = "tool_calls"
            elif text:  # the model answered in text: its logprobs come with it
                out.append(self._choice(event.choice, {"content": text}, None, logprobs))
        out.append(self._choice(event.choice, {}, finish))
        return out

    def usage(self, prompt_tokens: int) -> ChatCompletionChunk:
        chunk = self._chunk([])
        chunk["usage"] = _usage(prompt_tokens, self._completion_tokens)
        return chunk
