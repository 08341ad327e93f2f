"""Exact token counts for OpenAI-family models, offline.

The BPE tables ship inside the ``bpe-openai`` package (no download at run time). Chat messages
are counted the way OpenAI counts them: a few tokens of framing per message and for the reply's
priming, plus the encoded text of every field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import bpe_openai
import orjson

from chatgate.protocol import ChatCompletionRequest
from chatgate.protocol.chat import TextPart

__all__ = [
    "OFF_LOOP_CHARS",
    "Encoder",
    "chat_tokens",
    "count_text",
    "encode_text",
    "encoding_for",
    "encoding_name_for",
    "is_openai_model",
    "off_loop",
]

P = ParamSpec("P")
T = TypeVar("T")

_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
_PER_TOOL = 8

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")


class Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def is_openai_model(model: str) -> bool:
    """Is this an OpenAI model id (one OpenAI's encodings count exactly)?"""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(_O200K_PREFIXES + _CL100K_PREFIXES)


def encoding_name_for(model: str) -> str:
    """The tiktoken encoding of an OpenAI model id (o200k_base for anything unknown)."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


def encoding_for(name: str) -> Encoder:
    encoder: Encoder = bpe_openai.get_encoding(name)
    return encoder


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


OFF_LOOP_CHARS = 64 * 1024
"""Texts this long are tokenized on a worker thread, not on the event loop (tokenizers release
the GIL between pieces, so other requests go on meanwhile)."""

_PIECE = 100_000
"""Characters encoded at once: the BPE backend refuses a million characters or 200,000 tokens in
one call, so longer texts are counted piece by piece, split at whitespace."""


async def off_loop(
    work: Callable[Concatenate[str, P], T], text: str, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``work(text, ...)`` inline for a short text, on a worker thread for a long one."""
    if len(text) < OFF_LOOP_CHARS:
        return work(text, *args, **kwargs)
    return await asyncio.to_thread(work, text, *args, **kwargs)


def encode_text(encoder: Encoder, text: str) -> list[int]:
    """The token ids of ``text``; a very long one is encoded in pieces split at whitespace (a
    token or so may differ at each of a few splits, where one call would refuse the text)."""
    if len(text) <= _PIECE:
        return encoder.encode_ordinary(text)
    ids: list[int] = []
    start = 0
    while start < len(text):
        end = min(start + _PIECE, len(text))
        if end < len(text):
            space = text.rfind(" ", start + _PIECE // 2, end)
            end = space if space > start else end
        ids += encoder.encode_ordinary(text[start:end])
        start = end
    return ids


def count_text(encoder: Encoder, text: str) -> int:
    return (
        len(encoder.encode_ordinary(text))
        if len(text) <= _PIECE
        else len(encode_text(encoder, text))
    )


def chat_tokens(encoder: Encoder, request: ChatCompletionRequest) -> int:
    """Prompt tokens of a chat request, counted as OpenAI counts them."""
    total = _REPLY_PRIMING
    for message in request.messages:
        total += _PER_MESSAGE + len(encoder.encode_ordinary(message.role))
        total += count_text(encoder, _text(getattr(message, "content", None)))
        name = getattr(message, "name", None)
        if name:
            total += _PER_NAME + len(encoder.encode_ordinary(name))
        for call in getattr(message, "tool_calls", None) or ():
            total += len(encoder.encode_ordinary(call.function.name))
            total += len(encoder.encode_ordinary(call.function.arguments))
    for tool in request.tools or ():
        spec = orjson.dumps(tool.function.model_dump(exclude_none=True)).decode()
        total += _PER_TOOL + len(encoder.encode_ordinary(spec))
    return total
