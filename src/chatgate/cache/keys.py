"""What makes two requests the same answer: a canonical hash of the output-determining fields."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from chatgate.protocol import ChatCompletionRequest

__all__ = ["OUTPUT_FIELDS", "cache_key", "deterministic", "partition_key", "user_text"]

OUTPUT_FIELDS = (
    "messages",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "modalities",
    "prediction",
    "audio",
)
"""Fields that shape the output. Not ``user``, ``metadata``, ``store``, ``stream`` or
``stream_options``: they do not change what the model says."""


def deterministic(request: ChatCompletionRequest) -> bool:
    """Greedy decoding or a fixed seed: the same request gives the same answer."""
    return request.temperature == 0 or request.seed is not None


def cache_key(model: str, request: ChatCompletionRequest, scope: str) -> str:
    """SHA-256 over the model, the scope (a key id, or ``shared``) and the output fields as
    canonical JSON (sorted keys, defaults dropped), so equal requests hash equal."""
    fields: dict[str, Any] = request.model_dump(
        include=set(OUTPUT_FIELDS), exclude_none=True, by_alias=True
    )
    payload = orjson.dumps(
        {"model": model, "scope": scope, "request": fields}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(payload).hexdigest()


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def user_text(request: ChatCompletionRequest) -> str:
    """Every user message's text, in order: what the semantic cache compares by meaning."""
    return "\n".join(
        _user_text(message.model_dump(by_alias=True).get("content"))
        for message in request.messages
        if message.role == "user"
    )


def partition_key(model: str, request: ChatCompletionRequest, scope: str) -> str:
    """``cache_key`` with the user messages' content left out: requests in one partition differ
    at most in what the user wrote (same model, parameters, system prompt, earlier answers)."""
    fields: dict[str, Any] = request.model_dump(
        include=set(OUTPUT_FIELDS), exclude_none=True, by_alias=True
    )
    fields["messages"] = [
        {**m, "content": None} if m.get("role") == "user" else m for m in fields["messages"]
    ]
    payload = orjson.dumps(
        {"model": model, "scope": scope, "request": fields, "semantic": True},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(payload).hexdigest()
