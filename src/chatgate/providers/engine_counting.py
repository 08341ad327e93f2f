"""Counting with the engine itself, for an upstream model configured with no ``tokenizer``:

- **vLLM** and **llama.cpp's server** render and tokenize a chat request exactly as their chat
  endpoint does (``/tokenize`` with ``messages``; ``/apply-template`` then ``/tokenize``): the
  counts are the engine's own.
- **llama-cpp-python's server** and **Ollama** publish no chat template (and Ollama no
  tokenizer; llama-cpp-python's waits behind the running generation and cuts a running stream
  short): a request's texts are counted with ``o200k_base``, and the chat template's framing —
  the tokens it adds per message, its default system prompt — is learned when the provider
  starts from the engine's own ``usage.prompt_tokens`` for three tiny prompts
  (``max_tokens: 1``). With ``tokenizer: engine`` llama-cpp-python's ``/extras/tokenize`` counts
  the texts instead (for a server started with ``--interrupt_requests false``).

An engine that cannot be reached for a count is counted with the fallback (``o200k_base``):
counting never fails a request the engine could still serve.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from chatgate.protocol import ChatCompletionRequest
from chatgate.protocol.chat import DeveloperMessage, SystemMessage, TextPart
from chatgate.providers.counting import BpeCounter
from chatgate.providers.engines import EngineInfo

__all__ = [
    "FramedCounter",
    "Framing",
    "LlamaCppCounter",
    "TextCount",
    "VllmCounter",
    "counted_by",
    "engine_text_tokens",
    "learn_framing",
    "texts_of",
]

log = logging.getLogger("chatgate.providers.engines")

Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""POST a JSON body to one of the engine's own endpoints (a path under its root); its answer."""

_COUNT_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError)


def _wire(request: ChatCompletionRequest) -> dict[str, Any]:
    """The request's messages (and tools) as JSON, for an engine's tokenizer endpoint."""
    dumped = request.model_dump(mode="json", exclude_none=True, include={"messages", "tools"})
    return {key: value for key, value in dumped.items() if value}


class _EngineCounter:
    """Counts by asking the engine; the fallback counts when it cannot be asked."""

    def __init__(self, post: Post, model: str, fallback: BpeCounter):
        self._post = post
        self._model = model
        self._fallback = fallback

    async def prompt(self, request: ChatCompletionRequest) -> int:
        ids = await self.prompt_ids(request)
        return len(ids) if ids is not None else await self._fallback.prompt(request)

    async def prompt_ids(self, request: ChatCompletionRequest) -> list[int] | None:
        try:
            return await self._prompt_ids(request)
        except _COUNT_ERRORS as exc:
            log.warning("%s: could not count with the engine (%s)", self._model, exc)
            return None

    async def text(self, text: str) -> list[int]:
        try:
            return await self._text(text)
        except _COUNT_ERRORS as exc:
            log.warning("%s: could not count with the engine (%s)", self._model, exc)
            return await self._fallback.text(text)

    async def _prompt_ids(self, request: ChatCompletionRequest) -> list[int]:
        raise NotImplementedError

    async def _text(self, text: str) -> list[int]:
        raise NotImplementedError


class VllmCounter(_EngineCounter):
    """vLLM's ``/tokenize``: chat messages rendered with the model's template, as a chat call."""

    async def _prompt_ids(self, request: ChatCompletionRequest) -> list[int]:
        body = {"model": self._model, "add_generation_prompt": True, **_wire(request)}
        return _ids((await self._post("/tokenize", body))["tokens"])

    async def _text(self, text: str) -> list[int]:
        body = {"model": self._model, "prompt": text, "add_special_tokens": False}
        return _ids((await self._post("/tokenize", body))["tokens"])


class LlamaCppCounter(_EngineCounter):
    """llama.cpp's server: ``/apply-template`` renders the prompt, ``/tokenize`` counts it with
    the special tokens its chat endpoint adds."""

    async def _prompt_ids(self, request: ChatCompletionRequest) -> list[int]:
        rendered = await self._post("/apply-template", _wire(request))
        body = {"content": rendered["prompt"], "add_special": True, "parse_special": True}
        return _ids((await self._post("/tokenize", body))["tokens"])

    async def _text(self, text: str) -> list[int]:
        body = {"content": text, "add_special": False, "parse_special": False}
        return _ids((await self._post("/tokenize", body))["tokens"])


def _ids(tokens: Any) -> list[int]:
    """Token ids from a ``tokens`` list (llama.cpp gives ``{"id", "piece"}`` objects when asked
    for pieces)."""
    if not isinstance(tokens, list):
        raise ValueError("the engine's tokenizer answered no `tokens` list")
    return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]


@dataclass(frozen=True, slots=True)
class Framing:
    """What a chat template adds around the messages' texts, in tokens."""

    plain: int
    """With no system message (a template's default system prompt, the reply's priming)."""
    with_system: int
    """With a system (or developer) message of the caller's."""
    per_message: int


def texts_of(request: ChatCompletionRequest) -> list[str]:
    """Every text a chat request's prompt carries: message contents, names, tool calls' names and
    arguments, tool definitions."""
    texts: list[str] = []
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, str):
            texts.append(content)
        elif content:
            texts.extend(part.text for part in content if isinstance(part, TextPart))
        for call in getattr(message, "tool_calls", None) or ():
            texts.extend((call.function.name, call.function.arguments))
    for tool in request.tools or ():
        texts.append(orjson.dumps(tool.function.model_dump(exclude_none=True)).decode())
    return texts


TextCount = Callable[[str], Awaitable[list[int]]]


class FramedCounter:
    """The texts counted by ``tokens`` (the engine's text tokenizer, or ``o200k_base``), plus
    the framing learned from the engine."""

    def __init__(self, tokens: TextCount, framing: Framing):
        self._tokens = tokens
        self.framing = framing

    async def prompt(self, request: ChatCompletionRequest) -> int:
        system = any(isinstance(m, SystemMessage | DeveloperMessage) for m in request.messages)
        framing = self.framing
        base = framing.with_system if system else framing.plain
        content = len(await self._tokens("\n".join(texts_of(request))))
        return max(1, base + framing.per_message * len(request.messages) + content)

    async def prompt_ids(self, request: ChatCompletionRequest) -> list[int] | None:
        return None  # a count, not the ids the engine will see

    async def text(self, text: str) -> list[int]:
        return await self._tokens(text)


_PROBE_TEXT = "Hello"
_PROBE_SYSTEM = "Be brief."


async def learn_framing(
    ask: Callable[[list[dict[str, str]]], Awaitable[int]], tokens: TextCount
) -> Framing:
    """The framing from the engine's prompt counts of three tiny prompts (``ask`` answers a
    prompt's ``usage.prompt_tokens``)."""
    user = {"role": "user", "content": _PROBE_TEXT}
    one = await ask([user])
    three = await ask([user, {"role": "assistant", "content": _PROBE_TEXT}, user])
    system = await ask([{"role": "system", "content": _PROBE_SYSTEM}, user])

    async def content(*texts: str) -> int:
        return len(await tokens("\n".join(texts)))

    one_text = await content(_PROBE_TEXT)
    three_text = await content(_PROBE_TEXT, _PROBE_TEXT, _PROBE_TEXT)
    system_text = await content(_PROBE_SYSTEM, _PROBE_TEXT)
    per_message = round((three - one - (three_text - one_text)) / 2)
    return Framing(
        plain=one - per_message - one_text,
        with_system=system - 2 * per_message - system_text,
        per_message=per_message,
    )


def engine_text_tokens(post: Post, model: str, bos: int, fallback: BpeCounter) -> TextCount:
    """llama-cpp-python's ``/extras/tokenize`` (raw text; its BOS, ``bos`` tokens, dropped), the
    fallback when it cannot be asked."""

    async def tokens(text: str) -> list[int]:
        if not text:
            return []  # never sent: that server crashes on an empty text
        try:
            answer = await post("/extras/tokenize", {"model": model, "input": text})
            return _ids(answer["tokens"])[bos:]
        except _COUNT_ERRORS as exc:
            log.warning("%s: could not count with the engine (%s)", model, exc)
            return await fallback.text(text)

    return tokens


def counted_by(info: EngineInfo, tokenizer: str | None) -> str:
    """How an engine's prompts are counted, in words (for the log)."""
    return {
        "vllm": "vLLM's /tokenize",
        "llama.cpp": "llama.cpp's /apply-template and /tokenize",
        "llama-cpp-python": (
            "its /extras/tokenize and the chat framing it reported"
            if tokenizer == "engine"
            else "o200k_base and the chat framing it reported"
        ),
        "ollama": "o200k_base and the chat framing it reported",
    }.get(info.kind, "o200k_base")
