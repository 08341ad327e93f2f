"""``POST /v1/chat/completions``: parse, run the pipeline, answer JSON or SSE."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.auth import authenticate
from chatgate.api.sse import SSEResponse
from chatgate.gateway import Authenticator, ChunkStream, Pipeline
from chatgate.gateway.observe import Observer, RequestEnd
from chatgate.gateway.pipeline import COST_HEADER
from chatgate.protocol import (
    ChatCompletionRequest,
    ChatgateError,
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
    """Run ``work`` in this task, cancelling it the moment the client disconnects.

    One watcher task per request (not a second task for the work plus ``asyncio.wait``): the
    watcher cancels this task when the client goes, and a flag tells that cancellation apart
    from any other."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone and current.uncancel() == 0:
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()


class ChatEndpoint:
    def __init__(self, pipeline: Pipeline, authenticator: Authenticator, observer: Observer):
        self._pipeline = pipeline
        self._auth = authenticator
        self._observer = observer

    async def handle(self, request: Request) -> Response | ASGIApp:
        started = time.monotonic()
        request_id: str = request.state.request_id
        end = RequestEnd(request_id, "-", None, started, 500)
        try:
            return await self._handle(request, end)
        except ChatgateError as exc:
            end.status, end.error_type = exc.status_code, exc.error_type
            self._observer.finish(end)
            raise
        except Exception:
            self._observer.finish(end)
            raise

    async def _handle(self, request: Request, end: RequestEnd) -> Response | ASGIApp:
        end.principal = await authenticate(request, self._auth, "chat.completions")
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise InvalidRequestError(
                "Send the request body as JSON with `Content-Type: application/json` "
                f"(got `{content_type or 'none'}`).",
                code="invalid_content_type",
            )
        raw = await request.body()
        end.request_bytes = len(raw)
        if self._observer.wants_bodies:
            end.request_body = raw
        body = parse_json_object(raw)
        if isinstance(body.get("model"), str):
            end.model = body["model"]
        chat = validate(ChatCompletionRequest, body)
        if chat.model_extra:
            log.debug("request carries fields chatgate passes on: %s", sorted(chat.model_extra))
        try:
            outcome, ctx = await until_disconnect(
                request,
                self._pipeline.chat(chat, body, end.request_id, end.principal, request.headers),
            )
        except ClientDisconnected:
            log.info("client disconnected; request %s cancelled", end.request_id)
            end.status, end.error_type = 499, "client_disconnected"
            self._observer.finish(end)
            return Response(status_code=499)
        end.ctx, end.status = ctx, 200
        if isinstance(outcome, ChunkStream):

            def done(sent: int, error: str | None, body: bytes | None) -> None:
                end.response_bytes, end.error_type, end.response_body = sent, error, body
                self._observer.finish(end)

            def trailer() -> bytes:
                cost = ctx.cost()
                return b"" if cost is None else f": {COST_HEADER}: {cost:.8f}\n\n".encode()

            keep = self._observer.wants_bodies
            return SSEResponse(
                outcome, ctx.response_headers, end.request_id, done, keep_body=keep, trailer=trailer
            )
        payload = orjson.dumps(outcome)
        end.response_bytes = len(payload)
        if self._observer.wants_bodies:
            end.response_body = payload
        self._observer.finish(end)
        return Response(payload, media_type="application/json", headers=ctx.response_headers)
