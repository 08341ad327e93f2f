"""What a request carries through the pipeline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.gateway.auth import Principal
from chatgate.gateway.registry import Deployment
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
    deployment: Deployment
    principal: Principal
    deadline: float
    """``time.monotonic()`` by which the request must end."""
    started: float = field(default_factory=time.monotonic)
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers stages want on the HTTP response (the API layer adds them)."""
    _call: ChatCall = field(init=False)

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

    def server_timing(self) -> str:
        """``Server-Timing`` value: time queued for the model, and gateway time so far."""
        queued = self._call.stats.queue_wait_s * 1000
        total = (time.monotonic() - self.started) * 1000
        return f"queue;dur={queued:.1f}, total;dur={total:.1f}"


Next = Callable[[ChatContext], Awaitable[Outcome]]


class Stage(Protocol):
    """One pipeline step: does its job, then calls (or skips) the rest of the pipeline."""

    name: str

    async def __call__(self, ctx: ChatContext, call_next: Next) -> Outcome: ...
