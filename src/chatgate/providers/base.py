"""The provider interface every model backend implements, and the call it receives."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionUsage,
)

__all__ = ["Capabilities", "ChatCall", "Provider", "ProviderState", "ProviderStats"]

ProviderState = Literal["loading", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do, declared as data (checked before a call is made)."""

    streaming: bool = True
    tools: bool = True
    response_format: bool = True
    logprobs: bool = True
    image_input: bool = False


@dataclass(slots=True)
class ProviderStats:
    """Measurements a provider fills in while it serves a call."""

    queue_wait_s: float = 0.0
    upstream_model: str | None = None
    usage: CompletionUsage | None = None
    """What the call actually used, once known (streams included), for limits and metering."""
    usage_source: str | None = None
    """``gateway`` when chatgate counted the usage itself (an upstream stream that sent none);
    None when it is the provider's own."""


@dataclass(slots=True)
class ChatCall:
    """One chat completion as a provider receives it.

    ``body`` is the client's JSON object as received (unknown fields included): upstream
    providers forward it with ``model`` replaced, so nothing the client sent is dropped.
    """

    request: ChatCompletionRequest
    body: dict[str, Any]
    request_id: str
    deadline: float
    """``time.monotonic()`` by which the call must end."""
    client_request_id: str | None = None
    """The id the client gave its request, if any (forwarded upstream as the request's id)."""
    created: int = field(default_factory=lambda: int(time.time()))
    priority: int = 1
    """0 critical, 1 normal, 2 low: the order in which a busy model takes waiting calls."""
    stats: ProviderStats = field(default_factory=ProviderStats)

    def time_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@runtime_checkable
class Provider(Protocol):
    """A model backend: the embedded llama.cpp engine or an OpenAI-compatible upstream."""

    capabilities: Capabilities

    @property
    def state(self) -> ProviderState:
        """``ready`` to serve, ``loading`` (a local model still loading) or ``failed``."""
        ...

    async def start(self) -> None:
        """Acquire resources (load a model, open a connection pool)."""
        ...

    async def close(self) -> None: ...

    async def complete(self, call: ChatCall) -> ChatCompletion:
        """Answer a non-streaming call."""
        ...

    def stream(self, call: ChatCall) -> AsyncIterator[ChatCompletionChunk]:
        """Answer a streaming call; errors before the first chunk are raised, not yielded."""
        ...

    async def count_tokens(self, request: ChatCompletionRequest) -> int | None:
        """Prompt tokens of ``request`` with the model's own tokenizer, if known."""
        ...

    async def tokenize(
        self, prompt: str | ChatCompletionRequest, *, add_special_tokens: bool = True
    ) -> list[int] | None:
        """Token ids of a plain text (``add_special_tokens``: with the model's BOS, if it has
        one) or of a chat request's prompt as the model sees it; ``None`` where the ids are not
        known (a hosted model's chat framing)."""
        ...

    def context_window(self) -> int | None:
        """Prompt + completion tokens the model accepts, if known."""
        ...
