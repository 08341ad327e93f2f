"""Bounded input: no request body larger than its route allows is read.

A declared ``Content-Length`` over the limit is refused before a byte of the body is read; a
body that arrives without one (chunked) is counted as it arrives and refused the moment it
passes the limit. Either way the answer is ``413`` in OpenAI's error shape. Uploads
(``/v1/files``) are bounded by ``files.max_bytes`` plus room for the form's other fields; every
other route by ``server.max_body_bytes``."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.protocol import PayloadTooLargeError

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]

_FORM_ROOM = 1024 * 1024
"""Bytes an upload's multipart form may hold beyond the file itself (boundaries, `purpose`)."""


class BodyTooLarge(PayloadTooLargeError):
    def __init__(self, limit: int):
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int):
        self.app = app
        self._default = max_body_bytes
        self._uploads = max_upload_bytes + _FORM_ROOM

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self._uploads if scope["path"] == "/v1/files" else self._default
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await _refuse(send, limit)
                    return
                break
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, limit: int) -> None:
    error = BodyTooLarge(limit)
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": orjson.dumps(error.to_body())})
