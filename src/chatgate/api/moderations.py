"""``POST /v1/moderations``: OpenAI's moderation endpoint, answered by the configured engine
(the offline rules by default)."""

from __future__ import annotations

import secrets

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.gateway import Authenticator
from chatgate.gateway.guards import Guards
from chatgate.guards.verdict import MODERATION_CATEGORIES
from chatgate.protocol import InvalidRequestError, parse_json_object, validate
from chatgate.protocol.moderations import ModerationRequest, ModerationResponse, ModerationResult

__all__ = ["ModerationEndpoint"]

_MAX_CHARACTERS = 1_000_000


class ModerationEndpoint:
    def __init__(self, guards: Guards, authenticator: Authenticator):
        self._guards = guards
        self._auth = authenticator

    async def create(self, request: Request) -> Response:
        await authenticate(request, self._auth, "moderations")
        body = validate(ModerationRequest, parse_json_object(await request.body()))
        if isinstance(body.input, str):
            texts = [body.input]
        else:
            texts = [
                item if isinstance(item, str) else getattr(item, "text", "") for item in body.input
            ]
            if any(getattr(item, "type", None) == "image_url" for item in body.input):
                raise InvalidRequestError(
                    "Image inputs are not supported by this moderation model.",
                    param="input",
                    code="unsupported_input",
                )
        if sum(len(t) for t in texts) > _MAX_CHARACTERS:
            raise InvalidRequestError(
                f"`input` is too long (at most {_MAX_CHARACTERS} characters).", param="input"
            )
        moderator = self._guards.moderator
        verdicts = await moderator.moderate(texts)
        results: list[ModerationResult] = []
        for verdict in verdicts:
            applied: dict[str, list[str]] = {name: ["text"] for name in MODERATION_CATEGORIES}
            results.append(
                {
                    "flagged": verdict.flagged,
                    "categories": {
                        n: verdict.categories.get(n, False) for n in MODERATION_CATEGORIES
                    },
                    "category_scores": {
                        n: verdict.category_scores.get(n, 0.0) for n in MODERATION_CATEGORIES
                    },
                    "category_applied_input_types": applied,
                }
            )
        answer: ModerationResponse = {
            "id": f"modr-{secrets.token_hex(12)}",
            "model": moderator.model,
            "results": results,
        }
        return Response(orjson.dumps(answer), media_type="application/json")
