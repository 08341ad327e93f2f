"""Server-sent events for chat completion streams, with disconnect-driven cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import orjson
from starlette.types import Receive, Scope, Send

from chatgate.gateway import ChunkStream
from chatgate.protocol import ChatgateError

__all__ = ["SSEResponse"]

log = logging.getLogger("chatgate.api")

_DONE = b"data: [DONE]\n\n"


def _event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class SSEResponse:
    """Writes each chunk as one ``data:`` event and ends with ``data: [DONE]``.

    An error after the first byte becomes a ``data: {"error": ...}`` event, then ``[DONE]``.
    If the client goes away, the stream (and the generation behind it) is cancelled at once.
    ``trailer`` is asked, once the last chunk is out, for bytes to send before ``[DONE]``: SSE
    comment lines (``: …``), which every SSE parser skips.
    """

    def __init__(
        self,
        stream: ChunkStream,
        headers: Mapping[str, str],
        request_id: str,
        on_done: Callable[[int, str | None, bytes | None], None] | None = None,
        *,
        keep_body: bool = False,
        trailer: Callable[[], bytes] | None = None,
    ):
        self._stream = stream
        self._trailer = trailer
        self._on_done = on_done
        self._kept: list[bytes] | None = [] if keep_body else None
        self._sent = 0
        self._error: str | None = "client_disconnected"
        self._headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ]
        self._request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.ensure_future(self._write(send))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, watcher):
                task.cancel()
            await asyncio.gather(writer, watcher, return_exceptions=True)
            await self._stream.aclose()
            if self._on_done is not None:
                body = b"".join(self._kept) if self._kept is not None else None
                self._on_done(self._sent, self._error, body)

    async def _write(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        try:
            async for chunk in self._stream:
                await self._emit(send, _event(chunk))
            self._error = None
            if self._trailer is not None and (trailer := self._trailer()):
                await self._emit(send, trailer)
        except ChatgateError as exc:
            self._error = exc.error_type
            await self._emit(send, _event(exc.to_body()))
        except Exception:
            log.exception("stream failed (request %s)", self._request_id)
            error = ChatgateError(
                f"The server had an error while streaming (request id {self._request_id})."
            )
            self._error = error.error_type
            await self._emit(send, _event(error.to_body()))
        await send({"type": "http.response.body", "body": _DONE, "more_body": False})
        self._sent += len(_DONE)

    async def _emit(self, send: Send, data: bytes) -> None:
        await _body(send, data)
        self._sent += len(data)
        if self._kept is not None:
            self._kept.append(data)


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
