"""What every governed endpoint shares on the HTTP side: who is calling and whether they may call
this operation (key and scope), cancelling the work when the client leaves, and one record of how
the request ended — answered, refused, failed or disconnected — for the request log, metrics and
the JSON log. Endpoints only parse, run their operation through the pipeline and render."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.auth import authenticate
from chatgate.gateway import Authenticator
from chatgate.gateway.context import AnyContext, Operation, Served
from chatgate.gateway.observe import Observer, RequestEnd
from chatgate.gateway.pipeline import COST_HEADER, Pipeline
from chatgate.protocol import ChatgateError, parse_json_object

__all__ = ["ClientDisconnected", "Governed", "until_disconnect"]

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


Work = Callable[[RequestEnd], Awaitable[Response | ASGIApp]]
"""An endpoint's own part: parse, run the pipeline, render; it fills in ``end`` as it goes (the
model asked for, byte counts, the context) and sets ``end.deferred`` when a stream will report
its own end."""


class Governed:
    def __init__(self, authenticator: Authenticator, observer: Observer, pipeline: Pipeline):
        self._auth = authenticator
        self.observer = observer
        self.pipeline = pipeline

    async def json(self, request: Request, end: RequestEnd) -> dict[str, Any]:
        """The request's JSON object (400 otherwise); its size (and, when body logging is on,
        its bytes) go in the record."""
        raw = await request.body()
        end.request_bytes = len(raw)
        if self.observer.wants_bodies:
            end.request_body = raw
        return parse_json_object(raw)

    async def run(
        self,
        op: Operation,
        call: Any,
        target: Served,
        end: RequestEnd,
        request: Request,
        *,
        input_tokens: int | None = None,
    ) -> tuple[Any, AnyContext]:
        """Run ``call`` through the pipeline as ``op`` on ``target``, for the caller ``end``
        names; its result and context."""
        assert end.principal is not None, "authenticated first"
        end.model = target.name
        ctx: AnyContext = self.pipeline.context(
            op,
            call,
            target,
            end.principal,
            end.request_id,
            headers=request.headers,
            input_tokens=input_tokens,
        )
        return await self.pipeline.run(ctx), ctx

    async def __call__(
        self, request: Request, op: Operation, work: Work, *, watch: bool = True
    ) -> Response | ASGIApp:
        """Authenticate for ``op``, run ``work`` (cancelled if the client leaves, unless
        ``watch`` is off: an upload reads the body the watcher would consume), record the end."""
        end = RequestEnd(request.state.request_id, "-", None, time.monotonic(), 500)
        end.endpoint = op.endpoint
        end.client_request_id = request.state.client_request_id
        try:
            end.principal = await authenticate(request, self._auth, op.scope)
            if watch:
                await request.body()  # read (and kept) before the watcher takes the receive channel
                response = await until_disconnect(request, work(end))
            else:
                response = await work(end)
        except (ClientDisconnected, ClientDisconnect):  # ClientDisconnect: gone mid-upload
            log.info("client disconnected; request %s cancelled", end.request_id)
            end.status, end.error_type = 499, "client_disconnected"
            self.observer.finish(end)
            return Response(status_code=499)
        except ChatgateError as exc:
            end.status, end.error_type = exc.status_code, exc.error_type
            self.observer.finish(end)
            raise
        except Exception:
            self.observer.finish(end)
            raise
        if not end.deferred:
            end.status = getattr(response, "status_code", 200)
            self.observer.finish(end)
        return response

    def answer(
        self, end: RequestEnd, ctx: AnyContext, payload: bytes, status: int = 200
    ) -> Response:
        """A JSON answer from the pipeline's context: its headers (timing, limits, cost) and
        what the request log keeps of it."""
        end.ctx, end.response_bytes = ctx, len(payload)
        if self.observer.wants_bodies:
            end.response_body = payload
        return Response(
            payload, status_code=status, media_type="application/json", headers=ctx.response_headers
        )


def cost_trailer(ctx: AnyContext) -> bytes:
    """A finished stream's cost as an SSE comment line before ``[DONE]``."""
    cost = ctx.cost()
    return b"" if cost is None else f": {COST_HEADER}: {cost:.8f}\n\n".encode()
