"""What an operation carries through the pipeline: one context type for every operation.

A ``Context`` is generic over the operation's wire request and over what serves it (a chat
``ModelGroup``, an ``EmbeddingModel``, a plain ``Target``). The stages every operation passes —
access, limits, budget, deadline, telemetry — read only what all contexts have: the operation,
the caller, the target's name and price ceiling, the input tokens (counted once), the usage and
price once served. Chat's own stages (guards, grounding, context fit, cache, the router) take a
``ChatContext``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from chatgate.gateway.auth import Principal
from chatgate.gateway.experiments import Assignment
from chatgate.gateway.guards import GuardFlags
from chatgate.gateway.prompts import PromptUse
from chatgate.gateway.registry import Deployment, ModelGroup
from chatgate.gateway.streams import ChunkStream
from chatgate.pricing import Price
from chatgate.protocol import ChatCompletion, ChatCompletionRequest
from chatgate.providers import ChatCall
from chatgate.providers.base import ProviderStats

__all__ = [
    "AnyContext",
    "ChatContext",
    "ChatNext",
    "Context",
    "Next",
    "Operation",
    "Outcome",
    "Served",
    "Stage",
    "Target",
    "chat_call",
]

Outcome = ChatCompletion | ChunkStream
"""A chat operation's result: a full response, or a stream whose first chunk already arrived."""


class Served(Protocol):
    """What a common stage needs of whatever serves an operation."""

    @property
    def name(self) -> str:
        """The public model id (limits per model, logs, metrics), ``-`` where none applies."""
        ...

    @property
    def aliases(self) -> Sequence[str]:
        """Other ids it answers to (an allow-list may name it by one)."""
        ...

    @property
    def most_expensive(self) -> Price | None:
        """The highest price the work may be charged at (budget reservations); None: unknown."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """What serves an operation that has no model object of its own (moderations, uploads)."""

    name: str
    price: Price | None
    aliases: tuple[str, ...] = ()

    @property
    def most_expensive(self) -> Price | None:
        return self.price


R = TypeVar("R")
M = TypeVar("M", bound=Served)


@dataclass(frozen=True, slots=True, eq=False)
class Operation:
    """One kind of call a client can make, and what the common stages need to know of it."""

    name: str
    """Unique: ``chat.completions``, ``embeddings``, ``vector_stores.search``, ..."""
    scope: str
    """The endpoint scope a key must allow (``allowed_endpoints``)."""
    endpoint: str
    """The HTTP route, as the request log, usage reports and metric labels name it."""
    gen_ai: str
    """OpenTelemetry's ``gen_ai.operation.name`` (``chat``, ``embeddings``, ...)."""
    model_scoped: bool = True
    """A key's ``allowed_models`` apply (moderations, uploads and batch creation name no model a
    key could be kept from)."""
    count_input: Callable[[Context[Any, Any]], Awaitable[int]] | None = None
    """Counts the input tokens when the context was not given them (chat: the model's
    tokenizer, after templates, guards and context fitting had their say)."""
    output_reserve: Callable[[Context[Any, Any], int], int] | None = None
    """The most output tokens the call may produce (``default``: when it sets no cap)."""

    def __repr__(self) -> str:
        return f"Operation({self.name})"


@dataclass(slots=True, eq=False)
class Context(Generic[R, M]):
    op: Operation
    request: R
    """The operation's wire request."""
    request_id: str
    model: M
    """What was asked for (the router may serve a chat model's fallback)."""
    principal: Principal
    deadline: float
    """``time.monotonic()`` by which the request must end."""
    body: dict[str, Any] = field(default_factory=dict)
    """The client's JSON object as received (forwarded upstream with unknown fields kept)."""
    started: float = field(default_factory=time.monotonic)
    headers: Mapping[str, str] = field(default_factory=dict)
    """The HTTP request's headers (lower-case names)."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers stages want on the HTTP response (the API layer adds them)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in named steps (e.g. ``limit``), reported in ``Server-Timing``."""
    marks: dict[str, float] = field(default_factory=dict)
    """Monotonic times of ``upstream_start``, ``first_chunk`` and ``upstream_end``."""
    priority: int = 1
    """0 critical, 1 normal, 2 low (set by the limits stage from the request and the key)."""
    stats: ProviderStats = field(default_factory=ProviderStats)
    """Filled in as the work runs: usage (for limits, budgets, cost), time queued."""
    attempts: int = 0
    """Provider calls made for this request (retries and fallbacks included)."""
    served_from: str | None = None
    """``cache`` or ``coalesced`` when no upstream call was made for this request."""
    served_by: Deployment | None = None
    """The chat deployment that answered (set by the router)."""
    provider: str | None = None
    """Who did the work, as configured: ``local``, ``openai_compat`` (None: chatgate itself)."""
    price: Price | None = None
    """What the work is charged at, once it is served; cost = price x usage."""
    prompt: PromptUse | None = None
    """The template this request was rendered from, if any."""
    assignment: Assignment | None = None
    """The experiment variant this request was served as, if any."""
    guard_flags: GuardFlags = field(default_factory=GuardFlags)
    """What the guards found (``pii:email``, ``moderation:hate``, ...)."""
    input_tokens: int | None = None
    """The input's tokens, once counted (given up front by operations that know them; none
    for operations without a counter that were given none: uploads, batch creation)."""
    call: ChatCall | None = None
    """A chat provider's view of this request, made when the router first needs it."""
    client_request_id: str | None = None
    """The id the client gave its request, if any (``request_id`` is the gateway's)."""

    @property
    def stream(self) -> bool:
        return bool(getattr(self.request, "stream", False))

    async def prompt_tokens(self) -> int:
        """The input's tokens, counted once per request."""
        if self.input_tokens is None:
            counter = self.op.count_input
            self.input_tokens = 0 if counter is None else await counter(self)
        return self.input_tokens

    def forget_prompt_tokens(self) -> None:
        """The request's input changed: count it again when next asked."""
        if self.op.count_input is not None:
            self.input_tokens = None

    def output_reserve(self, default: int) -> int:
        """The most output tokens this call may produce (0 for operations that produce none)."""
        reserve = self.op.output_reserve
        return 0 if reserve is None else reserve(self, default)

    def cost(self) -> float | None:
        """What this request cost, once its usage is known (0 when served without an upstream
        call); None while unknown."""
        if self.served_from is not None:
            return 0.0
        usage = self.stats.usage
        if usage is None or self.price is None:
            return None
        return self.price.cost(usage)

    def server_timing(self) -> str:
        """``Server-Timing``: named steps (e.g. rate-limit wait), time queued for the model,
        and gateway time until the response started."""
        parts = [f"{name};dur={seconds * 1000:.1f}" for name, seconds in self.timings.items()]
        parts.append(f"queue;dur={self.stats.queue_wait_s * 1000:.1f}")
        parts.append(f"total;dur={(time.monotonic() - self.started) * 1000:.1f}")
        return ", ".join(parts)


AnyContext: TypeAlias = Context[Any, Any]
ChatContext: TypeAlias = Context[ChatCompletionRequest, ModelGroup]

Next = Callable[[Any], Awaitable[Any]]
"""The rest of the pipeline: takes the context, returns the operation's result."""
ChatNext = Callable[[ChatContext], Awaitable[Outcome]]
"""The rest of a chat operation's pipeline."""


def chat_call(ctx: ChatContext) -> ChatCall:
    """The provider's view of a chat request (made once; its ``stats`` are the context's)."""
    if ctx.call is None:
        ctx.call = ChatCall(
            request=ctx.request,
            body=ctx.body,
            request_id=ctx.request_id,
            deadline=ctx.deadline,
            priority=ctx.priority,
            stats=ctx.stats,
            client_request_id=ctx.client_request_id,
        )
    return ctx.call


class Stage(Protocol):
    """One pipeline step: does its job, then calls (or skips) the rest of the pipeline."""

    name: str

    @property
    def operations(self) -> frozenset[str] | None:
        """The operations (by name) this stage applies to; None: every operation."""
        ...

    async def __call__(self, ctx: Any, call_next: Next) -> Any: ...
