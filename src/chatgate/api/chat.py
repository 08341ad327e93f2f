"""``POST /v1/chat/completions``: parse, run the pipeline, answer JSON or SSE."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.governed import Governed, cost_trailer
from chatgate.api.sse import SSEResponse
from chatgate.gateway import ChunkStream
from chatgate.gateway.observe import RequestEnd
from chatgate.gateway.operations import CHAT
from chatgate.protocol import (
    ChatCompletionRequest,
    InvalidRequestError,
    validate,
)

__all__ = ["ChatEndpoint", "require_json"]

log = logging.getLogger("chatgate.api")


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequestError(
            "Send the request body as JSON with `Content-Type: application/json` "
            f"(got `{content_type or 'none'}`).",
            code="invalid_content_type",
        )


class ChatEndpoint:
    def __init__(self, governed: Governed):
        self._pipeline = governed.pipeline
        self._governed = governed

    async def handle(self, request: Request) -> Response | ASGIApp:
        async def work(end: RequestEnd) -> Response | ASGIApp:
            return await self._chat(request, end)

        return await self._governed(request, CHAT, work)

    async def _chat(self, request: Request, end: RequestEnd) -> Response | ASGIApp:
        require_json(request)
        observer = self._governed.observer
        body = await self._governed.json(request, end)
        if isinstance(body.get("model"), str):
            end.model = body["model"]
        chat = validate(ChatCompletionRequest, body)
        if chat.model_extra:
            log.debug("request carries fields chatgate passes on: %s", sorted(chat.model_extra))
        assert end.principal is not None
        outcome, ctx = await self._pipeline.chat(
            chat,
            body,
            end.request_id,
            end.principal,
            request.headers,
            client_request_id=end.client_request_id,
        )
        if not isinstance(outcome, ChunkStream):
            return self._governed.answer(end, ctx, orjson.dumps(outcome))
        end.ctx, end.status, end.deferred = ctx, 200, True

        def done(sent: int, error: str | None, body: bytes | None) -> None:
            end.response_bytes, end.error_type, end.response_body = sent, error, body
            observer.finish(end)

        return SSEResponse(
            outcome,
            ctx.response_headers,
            end.request_id,
            done,
            keep_body=observer.wants_bodies,
            trailer=lambda: cost_trailer(ctx),
        )
