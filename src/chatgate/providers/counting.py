"""How an upstream model's tokens are counted: OpenAI's BPE encodings (exact for OpenAI's
models, with OpenAI's chat framing), the model's own GGUF vocabulary and chat template (exact
for llama.cpp-based engines: the engine's default system prompt and special tokens included), or
its Hugging Face ``tokenizer.json`` with the chat template of its ``tokenizer_config.json`` (as
vLLM and transformers render and count). Long texts are counted on a worker thread. Counting with
the engine itself is in ``engine_counting``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Protocol

import tokenizers

from chatgate.protocol import ChatCompletionRequest
from chatgate.providers.local.template import ChatTemplate
from chatgate.providers.local.vocab import GgufVocab
from chatgate.tokenizers import (
    OFF_LOOP_CHARS,
    chat_tokens,
    encode_text,
    encoding_for,
    encoding_name_for,
    off_loop,
)

__all__ = ["BpeCounter", "Counter", "GgufCounter", "HfCounter", "counter_for"]


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
        self.name = encoding
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


class _TemplateCounter:
    """A model's own vocabulary and chat template: the rendered prompt's ids (exact), on a worker
    thread when long."""

    async def prompt(self, request: ChatCompletionRequest) -> int:
        return len(await self._ids(request))

    async def prompt_ids(self, request: ChatCompletionRequest) -> list[int] | None:
        return await self._ids(request)

    async def _ids(self, request: ChatCompletionRequest) -> list[int]:
        if _long(request):
            return await asyncio.to_thread(self._chat_ids, request)
        return self._chat_ids(request)

    async def text(self, text: str) -> list[int]:
        return await off_loop(self._text_ids, text)

    def _chat_ids(self, request: ChatCompletionRequest) -> list[int]:
        raise NotImplementedError

    def _text_ids(self, text: str) -> list[int]:
        raise NotImplementedError


class GgufCounter(_TemplateCounter):
    def __init__(self, path: Path):
        self._vocab = GgufVocab(path)

    def _chat_ids(self, request: ChatCompletionRequest) -> list[int]:
        return self._vocab.chat_tokens(request)

    def _text_ids(self, text: str) -> list[int]:
        return self._vocab.text_tokens(text)


class HfCounter(_TemplateCounter):
    """A Hugging Face ``tokenizer.json``, with the chat template (and BOS/EOS tokens) of the
    ``tokenizer_config.json`` beside it: the prompt rendered, then encoded with no special tokens
    added (the template writes them), as ``apply_chat_template`` does."""

    def __init__(self, path: Path):
        self._tokenizer = tokenizers.Tokenizer.from_file(str(path))
        config_path = path.with_name("tokenizer_config.json")
        config: dict[str, Any] = (
            json.loads(config_path.read_text()) if config_path.is_file() else {}
        )
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next(
                (t.get("template") for t in template if t.get("name") == "default"), None
            )
        if not isinstance(template, str) or not template:
            raise ValueError(f"{config_path} has no chat template")
        self._template = ChatTemplate(
            template,
            bos_token=_token(config.get("bos_token")),
            eos_token=_token(config.get("eos_token")),
        )

    def _chat_ids(self, request: ChatCompletionRequest) -> list[int]:
        return self._text_ids(self._template.render(request))

    def _text_ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _token(value: Any) -> str:
    """A special token as ``tokenizer_config.json`` writes it (a string, or an object with its
    ``content``)."""
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def counter_for(tokenizer: str | None, upstream_model: str) -> Counter:
    """The counter ``models[].tokenizer`` names locally (default, and for ``engine`` until the
    engine is asked: the upstream model id's encoding)."""
    if tokenizer is not None and tokenizer.endswith(".gguf"):
        return GgufCounter(Path(tokenizer))
    if tokenizer is not None and tokenizer.endswith(".json"):
        return HfCounter(Path(tokenizer))
    if tokenizer in ("o200k_base", "cl100k_base"):
        return BpeCounter(tokenizer)
    return BpeCounter(encoding_name_for(upstream_model))
