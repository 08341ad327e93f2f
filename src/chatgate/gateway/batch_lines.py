"""Answering one batch line through the same pipeline as interactive traffic (scopes, limits,
budgets, guards, cache, retries, fallbacks, request log, cost) at ``low`` priority, and turning
the outcome into OpenAI's batch output line."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from chatgate.gateway.auth import Principal
from chatgate.gateway.context import ChatContext
from chatgate.gateway.guards import Guards
from chatgate.gateway.observe import Observer, RequestEnd
from chatgate.gateway.pipeline import Pipeline
from chatgate.gateway.stages.ratelimit import PRIORITY_HEADER
from chatgate.protocol import (
    ChatCompletionRequest,
    ChatgateError,
    InvalidRequestError,
    OverloadedError,
    ServiceUnavailableError,
    TooManyRequestsError,
    validate,
)
from chatgate.protocol.moderations import ModerationRequest
from chatgate.state.batches import Claim, Settled

__all__ = ["LineAnswerer", "Transient"]

_TRANSIENT = (TooManyRequestsError, OverloadedError, ServiceUnavailableError)


class Transient(Exception):
    """The line could not be answered now (capacity); it goes back to the queue."""

    def __init__(self, retry_after: float):
        super().__init__(f"retry in {retry_after:.1f}s")
        self.retry_after = retry_after


def _line(custom_id: str, request_id: str, status: int, body: Any) -> bytes:
    return orjson.dumps(
        {
            "id": f"batch_req_{secrets.token_hex(12)}",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        }
    )


class LineAnswerer:
    def __init__(self, pipeline: Pipeline, observer: Observer, guards: Guards):
        self._pipeline = pipeline
        self._observer = observer
        self._guards = guards

    async def answer(self, claim: Claim, endpoint: str, principal: Principal) -> Settled:
        item = orjson.loads(claim.request)
        request_id = f"{claim.batch_id}-{claim.line}-{claim.attempts}"
        body: dict[str, Any] = item["body"]
        try:
            if endpoint == "/v1/moderations":
                return await self._moderate(claim, request_id, body)
            return await self._chat(claim, request_id, body, principal)
        except _TRANSIENT as exc:
            raise Transient(_retry_after(exc)) from exc
        except ChatgateError as exc:
            result = _line(claim.custom_id, request_id, exc.status_code, exc.to_body())
            return Settled(ok=False, result=result)

    async def _chat(
        self, claim: Claim, request_id: str, body: dict[str, Any], principal: Principal
    ) -> Settled:
        end = RequestEnd(request_id, str(body.get("model", "-")), principal, time.monotonic(), 500)
        end.request_bytes = len(claim.request)
        try:
            if body.get("stream"):
                raise InvalidRequestError(
                    "Batch requests cannot stream: remove `stream`.", param="stream"
                )
            request = validate(ChatCompletionRequest, body)
            outcome, ctx = await self._pipeline.chat(
                request, body, request_id, principal, {PRIORITY_HEADER: "low"}
            )
        except ChatgateError as exc:
            end.status, end.error_type = exc.status_code, exc.error_type
            self._observer.finish(end)
            raise
        assert isinstance(outcome, dict), "batch requests are never streamed"
        settled = _settled(claim.custom_id, request_id, outcome, ctx)
        end.ctx, end.status, end.response_bytes = ctx, 200, len(settled.result)
        self._observer.finish(end)
        return settled

    async def _moderate(self, claim: Claim, request_id: str, body: dict[str, Any]) -> Settled:
        answer = await self._guards.moderation(validate(ModerationRequest, body))
        return Settled(ok=True, result=_line(claim.custom_id, request_id, 200, answer))


def _retry_after(exc: ChatgateError) -> float:
    header = exc.headers.get("retry-after")
    try:
        return max(0.1, float(header)) if header else 1.0
    except ValueError:
        return 1.0


def _settled(custom_id: str, request_id: str, outcome: Any, ctx: ChatContext) -> Settled:
    usage = outcome.get("usage") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Settled(
        ok=True,
        result=_line(custom_id, request_id, 200, outcome),
        input_tokens=int(usage.get("prompt_tokens", 0)),
        cached_tokens=int(prompt_details.get("cached_tokens", 0)),
        output_tokens=int(usage.get("completion_tokens", 0)),
        reasoning_tokens=int(completion_details.get("reasoning_tokens", 0)),
        cost=ctx.cost() or 0.0,
    )
