"""``POST /v1/embeddings`` in OpenAI's shape, through the pipeline."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.governed import Governed
from chatgate.gateway.embeddings import EmbeddingModels, input_tokens, render_embeddings
from chatgate.gateway.observe import RequestEnd
from chatgate.gateway.operations import EMBEDDINGS
from chatgate.protocol.embeddings import parse_embedding_request

__all__ = ["EmbeddingEndpoint"]


class EmbeddingEndpoint:
    def __init__(self, models: EmbeddingModels, governed: Governed):
        self._models = models
        self._governed = governed

    async def create(self, request: Request) -> Response | ASGIApp:
        governed = self._governed

        async def work(end: RequestEnd) -> Response:
            body = parse_embedding_request(await governed.json(request, end))
            model = self._models.resolve(body.model)
            result, ctx = await governed.run(
                EMBEDDINGS, body, model, end, request, input_tokens=input_tokens(body)
            )
            payload = render_embeddings(result, body.model, body.encoding_format)
            return governed.answer(end, ctx, payload)

        return await governed(request, EMBEDDINGS, work)
