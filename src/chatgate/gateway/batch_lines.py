"""Answering one batch line through the same pipeline as interactive traffic (scopes, limits,
budgets, guards, cache, retries, fallbacks, request log, cost, traces) at ``low`` priority — chat
completions, embeddings and moderations alike — and turning the outcome into OpenAI's batch
output line."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from chatgate.gateway.auth import Principal
from chatgate.gateway.context import AnyContext
from chatgate.gateway.embeddings import EmbeddingModels, embeddings_payload, input_tokens
from chatgate.gateway.moderations import Moderations
from chatgate.gateway.observe import Observer, RequestEnd
from chatgate.gateway.operations import EMBEDDINGS, MODERATIONS
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
from chatgate.protocol.embeddings import parse_embedding_request
from chatgate.protocol.moderations import ModerationRequest
from chatgate.state.batches import Claim, Settled

__all__ = ["LineAnswerer", "Transient"]

_TRANSIENT = (TooManyRequestsError, OverloadedError, ServiceUnavailableError)
_LOW = "low"


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
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


class LineAnswerer:
    def __init__(
        self,
        pipeline: Pipeline,
        observer: Observer,
        moderations: Moderations,
        embedding_models: EmbeddingModels,
    ):
        self._pipeline = pipeline
        self._observer = observer
        self._moderations = moderations
        self._embedding_models = embedding_models

    async def answer(self, claim: Claim, endpoint: str, principal: Principal) -> Settled:
        item = orjson.loads(claim.request)
        request_id = f"{claim.batch_id}-{claim.line}-{claim.attempts}"
        body: dict[str, Any] = item["body"]
        end = RequestEnd(request_id, str(body.get("model", "-")), principal, time.monotonic(), 500)
        end.endpoint, end.request_bytes = endpoint, len(claim.request)
        try:
            if body.get("stream"):
                raise InvalidRequestError(
                    "Batch requests cannot stream: remove `stream`.", param="stream"
                )
            answer, ctx = await self._run(endpoint, body, request_id, principal)
        except ChatgateError as exc:
            end.status, end.error_type = exc.status_code, exc.error_type
            self._observer.finish(end)
            if isinstance(exc, _TRANSIENT):
                raise Transient(_retry_after(exc)) from exc
            result = _line(claim.custom_id, request_id, exc.status_code, exc.to_body())
            return Settled(ok=False, result=result)
        settled = _settled(claim.custom_id, request_id, answer, ctx)
        end.ctx, end.status, end.response_bytes = ctx, 200, len(settled.result)
        self._observer.finish(end)
        return settled

    async def _run(
        self, endpoint: str, body: dict[str, Any], request_id: str, principal: Principal
    ) -> tuple[Any, AnyContext]:
        pipeline = self._pipeline
        if endpoint == "/v1/moderations":
            call, tokens = self._moderations.call(validate(ModerationRequest, body))
            ctx: AnyContext = pipeline.context(
                MODERATIONS,
                call,
                self._moderations.target,
                principal,
                request_id,
                input_tokens=tokens,
                priority=_LOW,
            )
            return await pipeline.run(ctx), ctx
        if endpoint == "/v1/embeddings":
            request = parse_embedding_request(body)
            ctx = pipeline.context(
                EMBEDDINGS,
                request,
                self._embedding_models.resolve(request.model),
                principal,
                request_id,
                input_tokens=input_tokens(request),
                priority=_LOW,
            )
            result = await pipeline.run(ctx)
            return embeddings_payload(result, request.model, request.encoding_format), ctx
        chat = validate(ChatCompletionRequest, body)
        outcome, chat_ctx = await pipeline.chat(
            chat, body, request_id, principal, {PRIORITY_HEADER: _LOW}
        )
        assert isinstance(outcome, dict), "batch requests are never streamed"
        return outcome, chat_ctx


def _retry_after(exc: ChatgateError) -> float:
    header = exc.headers.get("retry-after")
    try:
        return max(0.1, float(header)) if header else 1.0
    except ValueError:
        return 1.0


def _settled(custom_id: str, request_id: str, answer: Any, ctx: AnyContext) -> Settled:
    usage = ctx.stats.usage or answer.get("usage") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Settled(
        ok=True,
        result=_line(custom_id, request_id, 200, answer),
        input_tokens=int(usage.get("prompt_tokens", 0)),
        cached_tokens=int(prompt_details.get("cached_tokens", 0)),
        output_tokens=int(usage.get("completion_tokens", 0)),
        reasoning_tokens=int(completion_details.get("reasoning_tokens", 0)),
        cost=ctx.cost() or 0.0,
    )
