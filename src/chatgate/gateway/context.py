"""What a request carries through the pipeline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.gateway.auth import Principal
from chatgate.gateway.experiments import Assignment
from chatgate.gateway.guards import GuardFlags
from chatgate.gateway.prompts import PromptUse
from chatgate.gateway.registry import Deployment, ModelGroup
from chatgate.gateway.streams import ChunkStream
from chatgate.protocol import ChatCompletion, ChatCompletionRequest
from chatgate.providers import ChatCall

__all__ = ["ChatContext", "Next", "Outcome", "Stage"]

Outcome = ChatCompletion | ChunkStream
"""A full response, or a stream whose first chunk already arrived."""


@dataclass(slots=True)
class ChatContext:
    request: ChatCompletionRequest
    body: dict[str, Any]
    request_id: str
    model: ModelGroup
    """The model asked for (the router may serve a fallback)."""
    principal: Principal
    deadline: float
    """``time.monotonic()`` by which the request must end."""
    started: float = field(default_factory=time.monotonic)
    headers: Mapping[str, str] = field(default_factory=dict)
    """The HTTP request's headers (lower-case names)."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers stages want on the HTTP response (the API layer adds them)."""
    timings: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    """Provider calls made for this request (retries and fallbacks included)."""
    served_from: str | None = None
    """``cache`` or ``coalesced`` when no upstream call was made for this request."""
    served_by: Deployment | None = None
    """The deployment that answered (set by the router)."""
    prompt: PromptUse | None = None
    """The template this request was rendered from, if any."""
    assignment: Assignment | None = None
    """The experiment variant this request was served as, if any."""
    guard_flags: GuardFlags = field(default_factory=GuardFlags)
    """What the guards found (``pii:email``, ``moderation:hate``, ...)."""
    marks: dict[str, float] = field(default_factory=dict)
    """Monotonic times of ``upstream_start``, ``first_chunk`` and ``upstream_end``."""
    """Seconds spent in named steps (e.g. ``limit``), reported in ``Server-Timing``."""
    _call: ChatCall = field(init=False)
    _prompt_tokens: int | None = None

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def call(self) -> ChatCall:
        """The provider's view of this request; its ``stats`` fill in as it runs."""
        return self._call

    def __post_init__(self) -> None:
        self._call = ChatCall(
            request=self.request,
            body=self.body,
            request_id=self.request_id,
            deadline=self.deadline,
        )

    async def prompt_tokens(self) -> int:
        """The prompt's tokens with the model's tokenizer (an estimate if none is known),
        counted once per request."""
        if self._prompt_tokens is None:
            counted = await self.model.provider.count_tokens(self.request)
            self._prompt_tokens = (
                counted if counted is not None else (self.request.rough_prompt_tokens())
            )
        return self._prompt_tokens

    def forget_prompt_tokens(self) -> None:
        """The request's messages changed: count them again when next asked."""
        self._prompt_tokens = None

    def cost(self) -> float | None:
        """What this request cost in USD, once its usage is known (0 when served without an
        upstream call); None while unknown."""
        if self.served_from is not None:
            return 0.0
        usage = self._call.stats.usage
        if usage is None or self.served_by is None or self.served_by.price is None:
            return None
        return self.served_by.price.cost(usage)

    def server_timing(self) -> str:
        """``Server-Timing``: named steps (e.g. rate-limit wait), time queued for the model,
        and gateway time until the response started."""
        parts = [f"{name};dur={seconds * 1000:.1f}" for name, seconds in self.timings.items()]
        parts.append(f"queue;dur={self._call.stats.queue_wait_s * 1000:.1f}")
        parts.append(f"total;dur={(time.monotonic() - self.started) * 1000:.1f}")
        return ", ".join(parts)


Next = Callable[[ChatContext], Awaitable[Outcome]]


class Stage(Protocol):
    """One pipeline step: does its job, then calls (or skips) the rest of the pipeline."""

    name: str

    async def __call__(self, ctx: ChatContext, call_next: Next) -> Outcome: ...
