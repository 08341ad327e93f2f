"""Fitting a request into the model's context window: OpenAI's 400 by default, or dropping whole
turns (oldest first, or from the middle out) and optionally clamping ``max_tokens``.

A *turn* starts at a user message and holds everything up to the next one, so an assistant's tool
calls always stay with their results. System and developer messages are never dropped, nor is the
newest turn.
"""

from __future__ import annotations

from chatgate.gateway.context import ChatContext, ChatNext, Outcome
from chatgate.gateway.operations import CHAT_ONLY
from chatgate.protocol import ContextLengthExceededError
from chatgate.protocol.chat import DeveloperMessage, Message, SystemMessage, UserMessage

__all__ = ["DROPPED_MESSAGES_HEADER", "ContextStage", "turns"]

DROPPED_MESSAGES_HEADER = "x-chatgate-context-dropped-messages"
DROPPED_TOKENS_HEADER = "x-chatgate-context-dropped-tokens"
CLAMPED_HEADER = "x-chatgate-max-tokens-clamped"


def turns(messages: list[Message]) -> tuple[list[int], list[list[int]]]:
    """Indices of pinned (system/developer) messages, and the turns as lists of indices."""
    pinned: list[int] = []
    groups: list[list[int]] = []
    for index, message in enumerate(messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            pinned.append(index)
        elif isinstance(message, UserMessage) or not groups:
            groups.append([index])
        else:
            groups[-1].append(index)
    return pinned, groups


def _exceeded(window: int, prompt: int, limit: int | None) -> ContextLengthExceededError:
    if limit is None or prompt >= window:
        return ContextLengthExceededError(
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {prompt} tokens. Please reduce the length of the messages.",
            param="messages",
        )
    return ContextLengthExceededError(
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + limit} tokens ({prompt} in the messages, {limit} in the completion). "
        "Please reduce the length of the messages or completion.",
        param="messages",
    )


class ContextStage:
    name = "context"
    operations = CHAT_ONLY

    async def __call__(self, ctx: ChatContext, call_next: ChatNext) -> Outcome:
        ctx.body.pop("context", None)  # our extension never goes upstream
        window = ctx.model.provider.context_window()
        if window is None:
            return await call_next(ctx)
        request = ctx.request
        prompt = await ctx.prompt_tokens()
        limit = request.completion_limit
        if prompt + (limit or 1) <= window:
            return await call_next(ctx)
        options = request.context
        config = ctx.model.config
        overflow = (options.overflow if options else None) or config.context_overflow
        clamp = (
            options.clamp_max_tokens
            if options and options.clamp_max_tokens is not None
            else (config.context_clamp)
        )
        if overflow != "error":
            prompt = await self._drop(ctx, window, 1 if clamp else (limit or 1), overflow)
        if limit is not None and prompt + limit > window:
            if not clamp or prompt >= window:
                raise _exceeded(window, prompt, limit)
            self._clamp(ctx, window - prompt)
        elif prompt >= window:
            raise _exceeded(window, prompt, None)
        return await call_next(ctx)

    async def _drop(self, ctx: ChatContext, window: int, reserve: int, overflow: str) -> int:
        """Drop whole turns until the prompt plus ``reserve`` fits; the new prompt size."""
        request = ctx.request
        messages = list(request.messages)
        _, groups = turns(messages)
        droppable = groups[:-1]
        before = await ctx.prompt_tokens()
        prompt = before
        dropped: set[int] = set()
        while droppable and prompt + reserve > window:
            victim = droppable.pop(0 if overflow == "truncate_oldest" else len(droppable) // 2)
            dropped.update(victim)
            kept = [m for i, m in enumerate(messages) if i not in dropped]
            ctx.request = request.model_copy(update={"messages": kept})
            ctx.forget_prompt_tokens()
            prompt = await ctx.prompt_tokens()
        if dropped:
            ctx.body["messages"] = [
                m for i, m in enumerate(ctx.body["messages"]) if i not in dropped
            ]
            ctx.response_headers[DROPPED_MESSAGES_HEADER] = str(len(dropped))
            ctx.response_headers[DROPPED_TOKENS_HEADER] = str(before - prompt)
        return prompt

    @staticmethod
    def _clamp(ctx: ChatContext, allowed: int) -> None:
        for field in ("max_tokens", "max_completion_tokens"):
            if getattr(ctx.request, field) is not None:
                setattr(ctx.request, field, allowed)
                ctx.body[field] = allowed
        ctx.response_headers[CLAMPED_HEADER] = str(allowed)
