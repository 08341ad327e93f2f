"""Which inference engine serves an upstream model, and what it tells about the model: asked once
when the provider starts (and again until it answers), from the endpoints each engine documents.

- **vLLM**: ``/v1/models`` entries carry ``max_model_len``; ``/tokenize`` renders and counts chat
  messages exactly as a chat call does.
- **llama.cpp's server**: ``/v1/models`` entries carry ``meta`` (``n_ctx_train``...) and are
  owned by ``llamacpp``; ``/props`` gives the context each slot serves; ``/apply-template`` and
  ``/tokenize`` give the exact prompt.
- **llama-cpp-python's server**: entries owned by ``me``; ``/extras/tokenize`` tokenizes raw text
  only, and it publishes neither its chat template nor its context size.
- **Ollama**: answers ``/api/version``; it has no tokenize endpoint and serves a context
  (``num_ctx``) it does not publish, truncating longer prompts silently.

What each one honours of OpenAI's request (``n``, ``tool_choice: "required"``) is in
``HONOURS``; config overrides it per model (``models[].capabilities``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

__all__ = ["HONOURS", "EngineInfo", "EngineKind", "identify", "root_of"]

log = logging.getLogger("chatgate.providers.engines")

EngineKind = Literal["vllm", "llama.cpp", "llama-cpp-python", "ollama", "unknown"]

HONOURS: dict[EngineKind, dict[str, bool]] = {
    # vLLM: `n` and `tool_choice: "required"` (guided decoding) since 0.8.
    "vllm": {"n": True, "tool_choice_required": True, "tool_choice_named": True},
    # llama.cpp's server: one choice per request; `required` with `--jinja`.
    "llama.cpp": {"n": False, "tool_choice_required": True, "tool_choice_named": True},
    # llama-cpp-python: one choice; a named `tool_choice` is forced with a grammar, "required" is
    # not read; a `developer` message is refused (422).
    "llama-cpp-python": {"n": False, "tool_choice_required": False, "tool_choice_named": True},
    # Ollama's OpenAI endpoint: one choice, `tool_choice` not read.
    "ollama": {"n": False, "tool_choice_required": False, "tool_choice_named": False},
    # An engine chatgate cannot tell: assumed to speak OpenAI's protocol as OpenAI does.
    "unknown": {"n": True, "tool_choice_required": True, "tool_choice_named": True},
}
"""What each engine honours; ``developer`` messages reach every engine but an unknown one (which
may be OpenAI's) as ``system`` messages: the role chat templates know."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    kind: EngineKind
    root: str
    """The engine's root URL (``base_url`` without its ``/v1``), where its own endpoints are."""
    context_window: int | None = None
    """Prompt + completion tokens the engine serves the model with, where it publishes it."""


def root_of(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


async def identify(
    session: aiohttp.ClientSession,
    base_url: str,
    model: str,
    headers: dict[str, str],
    seconds: float,
) -> EngineInfo:
    """The engine behind ``base_url``; raises ``aiohttp.ClientError``/``TimeoutError`` when it
    cannot be reached (the caller asks again later)."""
    root = root_of(base_url)
    entry = _entry(await _get(session, base_url.rstrip("/") + "/models", headers, seconds), model)
    if entry is not None and isinstance(entry.get("max_model_len"), int):
        return EngineInfo("vllm", root, entry["max_model_len"])
    if entry is not None and (entry.get("owned_by") == "llamacpp" or "meta" in entry):
        props = await _get(session, root + "/props", headers, seconds)
        settings = props.get("default_generation_settings") if props else None
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        return EngineInfo("llama.cpp", root, n_ctx if isinstance(n_ctx, int) else None)
    if entry is not None and entry.get("owned_by") == "me":
        return EngineInfo("llama-cpp-python", root)
    version = await _get(session, root + "/api/version", headers, seconds)
    if version is not None and "version" in version:
        return EngineInfo("ollama", root)
    return EngineInfo("unknown", root)


def _entry(listing: dict[str, Any] | None, model: str) -> dict[str, Any] | None:
    data = listing.get("data") if listing else None
    if not isinstance(data, list):
        return None
    entries = [e for e in data if isinstance(e, dict)]
    named = [e for e in entries if e.get("id") == model]
    # An engine serving one model answers under any name (llama.cpp's server ignores `model`).
    chosen = named or (entries if len(entries) == 1 else [])
    return chosen[0] if chosen else None


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], seconds: float
) -> dict[str, Any] | None:
    """A GET's JSON object; None for any answer that is not one (a 404 from an engine without
    that endpoint)."""
    async with session.get(
        url, headers=headers, timeout=aiohttp.ClientTimeout(total=seconds)
    ) as response:
        if response.status != 200:
            await response.read()
            return None
        try:
            payload = orjson.loads(await response.read())
        except orjson.JSONDecodeError:
            return None
    return payload if isinstance(payload, dict) else None
