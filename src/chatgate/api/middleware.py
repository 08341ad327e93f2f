"""ASGI middleware: request ids on every response, and a last-resort 500 in OpenAI's shape."""

from __future__ import annotations

import logging
import random
import re
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.protocol import error_body

__all__ = ["RequestIdMiddleware"]

log = logging.getLogger("chatgate.api")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _CLIENT_ID.match(candidate):
                return candidate
            break
    # An identifier, not a secret: 96 random bits from the fast PRNG (no syscall per request).
    return f"req_{random.getrandbits(96):024x}"


class RequestIdMiddleware:
    """Gives each request an id (the client's ``x-request-id`` if sane), echoes it back, adds
    ``Server-Timing`` where the endpoint set none, and turns an unhandled exception into a 500
    OpenAI error body naming that id."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False
        arrived = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", ()), header]
                if not any(name.lower() == b"server-timing" for name, _ in headers):
                    total = (time.monotonic() - arrived) * 1000
                    headers.append((b"server-timing", f"total;dur={total:.1f}".encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            if started:
                raise
            body = orjson.dumps(
                error_body(
                    f"The server had an error while processing your request "
                    f"(request id {request_id}).",
                    "server_error",
                    None,
                    None,
                )
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), header],
                }
            )
            await send({"type": "http.response.body", "body": body})
