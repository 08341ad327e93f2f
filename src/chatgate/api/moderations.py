"""``POST /v1/moderations``: OpenAI's moderation endpoint, answered by the configured engine
(the offline rules by default)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.api.render import json_response
from chatgate.gateway import Authenticator
from chatgate.gateway.guards import Guards
from chatgate.protocol import parse_json_object, validate
from chatgate.protocol.moderations import ModerationRequest

__all__ = ["ModerationEndpoint"]


class ModerationEndpoint:
    def __init__(self, guards: Guards, authenticator: Authenticator):
        self._guards = guards
        self._auth = authenticator

    async def create(self, request: Request) -> Response:
        await authenticate(request, self._auth, "moderations")
        body = validate(ModerationRequest, parse_json_object(await request.body()))
        return json_response(await self._guards.moderation(body))
