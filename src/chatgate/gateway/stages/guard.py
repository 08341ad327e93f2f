"""The guard stage: checks the request before it leaves (moderation, prompt injection, personal
data: flag, block, mask or pseudonymise) and the answer on its way back (placeholders restored,
moderation and the template's output checks), streams included — a stream is checked as it
flows, holding back only the few characters that could still be a placeholder, and a stream
that breaks a check ends with ``finish_reason: content_filter``."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

from chatgate.config import GuardPolicy
from chatgate.gateway.context import ChatContext, ChatNext, Outcome
from chatgate.gateway.degraded import canned_outcome
from chatgate.gateway.guards import GUARD_HEADER, Guards
from chatgate.gateway.operations import CHAT_ONLY
from chatgate.gateway.streams import ChunkStream, peek
from chatgate.guards.pii import Pseudonyms, StreamRestorer
from chatgate.guards.verdict import Verdict, combine
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ContentPolicyError,
    validate,
)

__all__ = ["GuardStage"]

_SCREENED_ROLES = frozenset({"user", "tool", "function"})
_MODERATE_EVERY = 256
"""Characters of a streamed answer between moderation passes."""
_MODERATE_OVERLAP = 200
"""Characters of the previous pass each moderation pass looks at again."""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _map_texts(message: dict[str, Any], change: Any) -> None:
    """Apply ``change`` to every text of a message: its content and tool-call arguments."""
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = change(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = change(part["text"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["arguments"] = change(function["arguments"])


class _Run:
    """One request's guard state."""

    def __init__(self, stage: GuardStage, ctx: ChatContext, name: str | None, policy: GuardPolicy):
        self.stage, self.ctx, self.policy = stage, ctx, policy
        self.pseudonyms: Pseudonyms | None = None
        if name is not None and policy.pii != "off":
            self.pseudonyms = Pseudonyms(stage.guards.pii_detector(name))
        checker = ctx.prompt.checker if ctx.prompt is not None else None
        self.checker = checker if policy.output_checks != "off" else None

    def flag(self, verdict: Verdict) -> bool:
        if verdict.flagged:
            self.ctx.guard_flags.add(verdict.guard, verdict.flagged_categories)
        return verdict.flagged

    async def screen_input(self) -> None:
        policy, ctx = self.policy, self.ctx
        messages: list[dict[str, Any]] = ctx.body.get("messages") or []
        screened = [
            _text_of(m.get("content")) for m in messages if m.get("role") in _SCREENED_ROLES
        ]
        screened = [t for t in screened if t]
        blocked: list[str] = []
        if policy.input_moderation != "off" and screened:
            verdicts = await self.stage.guards.moderator.moderate(screened)
            if self.flag(combine("moderation", verdicts)) and policy.input_moderation == "block":
                blocked.append("its content was flagged by moderation")
        if policy.prompt_injection != "off" and screened:
            verdict = combine(
                "prompt_injection", [self.stage.guards.injection.classify(t) for t in screened]
            )
            if self.flag(verdict) and policy.prompt_injection == "block":
                blocked.append("it looks like a prompt injection")
        if self.pseudonyms is not None:
            self._screen_pii(messages, blocked)
        if ctx.guard_flags.found:
            ctx.response_headers[GUARD_HEADER] = ", ".join(ctx.guard_flags.found)
        if blocked:
            raise _Blocked("; ".join(blocked))

    def _screen_pii(self, messages: list[dict[str, Any]], blocked: list[str]) -> None:
        assert self.pseudonyms is not None
        mode = self.policy.pii
        pseudonyms = self.pseudonyms
        changed = copy.deepcopy(messages)
        for message in changed:
            _map_texts(message, lambda t: pseudonyms.replace(t, reversible=mode != "mask"))
        kinds = sorted(pseudonyms.kinds_found)
        if not kinds:
            return
        self.ctx.guard_flags.add("pii", kinds)
        if mode == "block":
            blocked.append(f"it contains personal data or secrets ({', '.join(kinds)})")
        elif mode in ("mask", "pseudonymize"):
            ctx = self.ctx
            ctx.body["messages"] = changed
            ctx.request = validate(ChatCompletionRequest, ctx.body)
            ctx.forget_prompt_tokens()
        if mode != "pseudonymize":
            self.pseudonyms = None  # nothing to put back

    # --- the answer ---------------------------------------------------------------------

    async def _moderate_output(self, text: str) -> bool:
        if self.policy.output_moderation == "off" or not text:
            return False
        (verdict,) = await self.stage.guards.moderator.moderate([text])
        return self.flag(verdict) and self.policy.output_moderation == "block"

    async def answer(self, completion: ChatCompletion) -> ChatCompletion:
        # completions may be shared with coalesced requests: change a copy, and only if needed
        if self.pseudonyms is not None:
            completion = copy.deepcopy(completion)
        filtered: list[int] = []
        for position, choice in enumerate(completion["choices"]):
            message: dict[str, Any] = choice["message"]  # type: ignore[assignment]
            if self.pseudonyms is not None:
                _map_texts(message, self.pseudonyms.restore)
            text = message.get("content") or ""
            blocked = await self._moderate_output(text)
            if self.checker is not None:
                failed = self.flag(self.checker.final(text))
                blocked |= failed and self.policy.output_checks == "block"
            if blocked:
                filtered.append(position)
        if filtered and self.pseudonyms is None:
            completion = copy.deepcopy(completion)
        for position in filtered:
            choice = completion["choices"][position]
            choice["message"]["content"] = self.policy.blocked_reply or ""
            choice["message"].pop("tool_calls", None)
            choice["finish_reason"] = "content_filter"
        return completion

    async def stream(self, chunks: ChunkStream) -> AsyncIterator[ChatCompletionChunk]:
        texts: dict[int, str] = {}
        moderated: dict[int, int] = {}
        restorers: dict[tuple[int, int], StreamRestorer] = {}

        def restore(key: tuple[int, int], piece: str) -> str:
            if self.pseudonyms is None:
                return piece
            restorer = restorers.get(key)
            if restorer is None:
                restorer = restorers[key] = self.pseudonyms.restorer()
            return restorer.feed(piece)

        def flush(key: tuple[int, int]) -> str:
            restorer = restorers.pop(key, None)
            return restorer.flush() if restorer is not None else ""

        try:
            async for original in chunks:
                # chunks may be shared with coalesced streams: change a copy, and only if needed
                chunk = copy.deepcopy(original) if self.pseudonyms is not None else original
                broken: list[int] = []
                for position, choice in enumerate(chunk["choices"]):
                    index = choice["index"]
                    delta: dict[str, Any] = choice["delta"]  # type: ignore[assignment]
                    piece = delta.get("content")
                    if isinstance(piece, str) and piece:
                        delta["content"] = restore((index, -1), piece)
                    for call in delta.get("tool_calls") or ():
                        function = call.get("function") or {}
                        if isinstance(function.get("arguments"), str):
                            key = (index, int(call.get("index", 0)))
                            function["arguments"] = restore(key, function["arguments"])
                    if choice["finish_reason"] is not None:
                        tail = flush((index, -1))
                        if tail:
                            delta["content"] = (delta.get("content") or "") + tail
                        for call in delta.get("tool_calls") or ():
                            rest = flush((index, int(call.get("index", 0))))
                            function = call.get("function") or {}
                            if rest and isinstance(function.get("arguments"), str):
                                function["arguments"] += rest
                    text = texts.get(index, "") + (delta.get("content") or "")
                    texts[index] = text
                    if await self._stream_breaks(index, text, moderated, choice["finish_reason"]):
                        broken.append(position)
                if broken:
                    chunk = copy.deepcopy(chunk) if chunk is original else chunk
                    for position in broken:
                        chunk["choices"][position]["delta"] = {}
                        chunk["choices"][position]["finish_reason"] = "content_filter"
                yield chunk
                if broken:
                    return
        finally:
            await chunks.aclose()

    async def _stream_breaks(
        self, index: int, text: str, moderated: dict[int, int], finish: str | None
    ) -> bool:
        policy = self.policy
        if self.checker is not None:
            verdict = self.checker.final(text) if finish else self.checker.partial(text)
            if self.flag(verdict) and policy.output_checks == "block":
                return True
        done = moderated.get(index, 0)
        if policy.output_moderation != "off" and (len(text) - done >= _MODERATE_EVERY or finish):
            moderated[index] = len(text)
            # what is new, with an overlap for phrases cut at the last pass (not the whole
            # answer again: a long stream would cost quadratic time)
            return await self._moderate_output(text[max(0, done - _MODERATE_OVERLAP) :])
        return False


class _Blocked(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class GuardStage:
    name = "guard"
    operations = CHAT_ONLY

    def __init__(self, guards: Guards):
        self.guards = guards

    async def __call__(self, ctx: ChatContext, call_next: ChatNext) -> Outcome:
        template_policy = ctx.prompt.guard_policy if ctx.prompt is not None else None
        chosen = self.guards.policy(template_policy, ctx.principal, ctx.model.name)
        if chosen is None:
            if ctx.prompt is None or ctx.prompt.checker is None:
                return await call_next(ctx)
            name, policy = None, GuardPolicy()  # a template's checks apply without a policy
        else:
            name, policy = chosen
        run = _Run(self, ctx, name, policy)
        try:
            await run.screen_input()
        except _Blocked as blocked:
            if policy.blocked_reply is not None:
                return await canned_outcome(ctx, policy.blocked_reply, "content_filter", "blocked")
            raise ContentPolicyError(
                f"This request was refused because {blocked.reason}.", param="messages"
            ) from None
        outcome = await call_next(ctx)
        if isinstance(outcome, ChunkStream):
            return await peek(run.stream(outcome))
        return await run.answer(outcome)
