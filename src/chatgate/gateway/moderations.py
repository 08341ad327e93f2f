"""``/v1/moderations`` as an operation of the pipeline (HTTP requests and batch lines alike): its
target is the configured engine's model (moderation is free), its input tokens are estimated
from the texts (they count toward ``tpm``), and its innermost step asks the engine."""

from __future__ import annotations

import time

from chatgate.gateway.context import Context, Target
from chatgate.gateway.guards import Guards
from chatgate.gateway.operations import rough_tokens
from chatgate.guards.engine import UpstreamEngine
from chatgate.pricing import FREE
from chatgate.protocol.moderations import ModerationRequest, ModerationResponse

__all__ = ["ModerationCall", "ModerationContext", "Moderations"]


class ModerationCall:
    """A moderation request with the texts it asks about (checked before it runs)."""

    __slots__ = ("request", "texts")

    def __init__(self, request: ModerationRequest, texts: list[str]):
        self.request = request
        self.texts = texts

    @property
    def model(self) -> str | None:
        return self.request.model


ModerationContext = Context[ModerationCall, Target]


class Moderations:
    def __init__(self, guards: Guards):
        self._guards = guards
        self.target = Target(guards.moderator.model, FREE)
        self._provider = "openai_compat" if isinstance(guards.moderator, UpstreamEngine) else None

    def call(self, request: ModerationRequest) -> tuple[ModerationCall, int]:
        """The call for ``request`` and its input tokens (refusing what cannot be judged)."""
        texts = self._guards.moderation_texts(request)
        return ModerationCall(request, texts), rough_tokens(texts)

    async def __call__(self, ctx: ModerationContext) -> ModerationResponse:
        ctx.marks["upstream_start"] = time.monotonic()
        answer = await self._guards.moderation(ctx.request.texts)
        ctx.marks["upstream_end"] = time.monotonic()
        tokens = ctx.input_tokens or 0  # engines report no usage: the input's estimate stands
        ctx.stats.usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
        ctx.price = FREE
        ctx.provider = self._provider
        return answer
