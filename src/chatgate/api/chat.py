"""``POST /v1/chat/completions``: parse, run the pipeline, answer JSON or SSE."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.auth import authenticate
from chatgate.api.sse import SSEResponse
from chatgate.gateway import Authenticator, ChunkStream, Pipeline
from chatgate.protocol import (
    ChatCompletionRequest,
    InvalidRequestError,
    parse_json_object,
    validate,
)

__all__ = ["ChatEndpoint", "ClientDisconnected"]

log = logging.getLogger("chatgate.api")

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before the answer was ready; its work was cancelled."""


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``, cancelling it the moment the client disconnects."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientDisconnected
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ChatEndpoint:
    def __init__(self, pipeline: Pipeline, authenticator: Authenticator):
        self._pipeline = pipeline
        self._auth = authenticator

    async def handle(self, request: Request) -> Response | ASGIApp:
        principal = await authenticate(request, self._auth, "chat.completions")
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise InvalidRequestError(
                "Send the request body as JSON with `Content-Type: application/json` "
                f"(got `{content_type or 'none'}`).",
                code="invalid_content_type",
            )
        body = parse_json_object(await request.body())
        chat = validate(ChatCompletionRequest, body)
        if chat.model_extra:
            log.debug("request carries fields chatgate passes on: %s", sorted(chat.model_extra))
        request_id: str = request.state.request_id
        try:
            outcome, ctx = await until_disconnect(
                request, self._pipeline.chat(chat, body, request_id, principal, request.headers)
            )
        except ClientDisconnected:
            log.info("client disconnected; request %s cancelled", request_id)
            return Response(status_code=499)
        if isinstance(outcome, ChunkStream):
            return SSEResponse(outcome, ctx.response_headers, request_id)
        return Response(
            orjson.dumps(outcome),
            media_type="application/json",
            headers=ctx.response_headers,
        )
