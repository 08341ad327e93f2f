"""``POST /v1/embeddings`` in OpenAI's shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.gateway import Authenticator
from chatgate.gateway.embeddings import EmbeddingModels
from chatgate.protocol import parse_json_object
from chatgate.protocol.embeddings import parse_embedding_request

__all__ = ["EmbeddingEndpoint"]


class EmbeddingEndpoint:
    def __init__(self, models: EmbeddingModels, authenticator: Authenticator):
        self._models = models
        self._auth = authenticator

    async def create(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "embeddings")
        body = parse_embedding_request(parse_json_object(await request.body()))
        payload = await self._models.create(principal, body)
        return Response(payload, media_type="application/json")
