"""ASGI middleware: request ids on every response, and a last-resort 500 in OpenAI's shape."""

from __future__ import annotations

import logging
import re
import secrets
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.protocol import error_body

__all__ = ["RequestIdMiddleware"]

log = logging.getLogger("chatgate.api")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _client_request_id(scope: Scope) -> str | None:
    """The client's own id for its request (OpenAI's ``x-client-request-id``, or an
    ``x-request-id`` it sent), if it is a sane token; kept only as a correlation id."""
    found: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"x-client-request-id" or (name == b"x-request-id" and found is None):
            candidate = str(value.decode("latin-1"))
            found = candidate if _CLIENT_ID.match(candidate) else None
            if name == b"x-client-request-id":
                break
    return found


class RequestIdMiddleware:
    """Gives each request the gateway's own id (``x-request-id``; a client's id is echoed back as
    ``x-client-request-id``), adds ``Server-Timing`` where the endpoint set none, and turns an
    unhandled exception into a 500 OpenAI error body naming that id."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The gateway's own id, whatever the client sent: unique and unguessable, it is what the
        # request log, feedback and experiments key on (a client could otherwise reuse another
        # tenant's id). The client's id is kept beside it and echoed back.
        request_id = f"req_{secrets.token_hex(16)}"  # 128 bits: upstreams see it as a UUID
        client_id = _client_request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"], state["client_request_id"] = request_id, client_id
        header = (b"x-request-id", request_id.encode())
        extra = (
            [header]
            if client_id is None
            else [header, (b"x-client-request-id", client_id.encode())]
        )
        started = False
        arrived = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", ()), *extra]
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
