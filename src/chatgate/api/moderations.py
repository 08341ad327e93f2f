"""``POST /v1/moderations``: OpenAI's moderation endpoint, answered by the configured engine
(the offline rules by default), through the pipeline."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.governed import Governed
from chatgate.gateway.moderations import Moderations
from chatgate.gateway.observe import RequestEnd
from chatgate.gateway.operations import MODERATIONS
from chatgate.protocol import validate
from chatgate.protocol.moderations import ModerationRequest

__all__ = ["ModerationEndpoint"]


class ModerationEndpoint:
    def __init__(self, moderations: Moderations, governed: Governed):
        self._moderations = moderations
        self._governed = governed

    async def create(self, request: Request) -> Response | ASGIApp:
        governed = self._governed

        async def work(end: RequestEnd) -> Response:
            body = validate(ModerationRequest, await governed.json(request, end))
            call, tokens = self._moderations.call(body)
            target = self._moderations.target
            answer, ctx = await governed.run(
                MODERATIONS, call, target, end, request, input_tokens=tokens
            )
            return governed.answer(end, ctx, orjson.dumps(answer))

        return await governed(request, MODERATIONS, work)
