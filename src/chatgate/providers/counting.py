"""How an upstream model's tokens are counted: OpenAI's BPE encodings (exact for OpenAI's
models, with OpenAI's chat framing), or the model's own GGUF vocabulary and chat template (exact
for llama.cpp-based engines: the engine's default system prompt and special tokens included).
Long texts are counted on a worker thread."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from chatgate.protocol import ChatCompletionRequest
from chatgate.providers.local.vocab import GgufVocab
from chatgate.tokenizers import (
    OFF_LOOP_CHARS,
    chat_tokens,
    encode_text,
    encoding_for,
    encoding_name_for,
    off_loop,
)

__all__ = ["BpeCounter", "Counter", "GgufCounter", "counter_for"]


class Counter(Protocol):
    async def prompt(self, request: ChatCompletionRequest) -> int:
        """A chat request's prompt tokens."""
        ...

    async def prompt_ids(self, request: ChatCompletionRequest) -> list[int] | None:
        """A chat request's prompt token ids, where they are known."""
        ...

    async def text(self, text: str) -> list[int]:
        """A plain text's token ids (an answer's text, or ``/tokenize``'s prompt)."""
        ...


def _long(request: ChatCompletionRequest) -> bool:
    return request.rough_prompt_tokens() * 4 >= OFF_LOOP_CHARS


class BpeCounter:
    def __init__(self, encoding: str):
        self._encoder = encoding_for(encoding)

    async def prompt(self, request: ChatCompletionRequest) -> int:
        if _long(request):
            return await asyncio.to_thread(chat_tokens, self._encoder, request)
        return chat_tokens(self._encoder, request)

    async def prompt_ids(self, request: ChatCompletionRequest) -> list[int] | None:
        return None  # OpenAI's chat framing tokens have no published ids; the count is exact

    async def text(self, text: str) -> list[int]:
        return await off_loop(self._encode, text)

    def _encode(self, text: str) -> list[int]:
        return encode_text(self._encoder, text)


class GgufCounter:
    def __init__(self, path: Path):
        self._vocab = GgufVocab(path)

    async def prompt(self, request: ChatCompletionRequest) -> int:
        return len(await self._ids(request))

    async def prompt_ids(self, request: ChatCompletionRequest) -> list[int] | None:
        return await self._ids(request)

    async def _ids(self, request: ChatCompletionRequest) -> list[int]:
        if _long(request):
            return await asyncio.to_thread(self._vocab.chat_tokens, request)
        return self._vocab.chat_tokens(request)

    async def text(self, text: str) -> list[int]:
        return await off_loop(self._vocab.text_tokens, text)


def counter_for(tokenizer: str | None, upstream_model: str) -> Counter:
    """The counter ``models[].tokenizer`` names (default: the upstream model id's encoding)."""
    if tokenizer is not None and tokenizer.endswith(".gguf"):
        return GgufCounter(Path(tokenizer))
    return BpeCounter(tokenizer or encoding_name_for(upstream_model))
