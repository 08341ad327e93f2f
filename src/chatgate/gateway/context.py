"""What a request carries through the pipeline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    deadline: float
    """``time.monotonic()`` by which the request must end."""
    started: float = field(default_factory=time.monotonic)
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers stages want on the HTTP response (the API layer adds them)."""

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    def call(self) -> ChatCall:
        return ChatCall(
            request=self.request,
            body=self.body,
            request_id=self.request_id,
            deadline=self.deadline,
        )


Next = Callable[[ChatContext], Awaitable[Outcome]]


class Stage(Protocol):
    """One pipeline step: does its job, then calls (or skips) the rest of the pipeline."""

    name: str

    async def __call__(self, ctx: ChatContext, call_next: Next) -> Outcome: ...
