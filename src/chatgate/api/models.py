"""``GET /v1/models``, ``GET /v1/models/{model}`` and ``GET /health``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.api.render import json_response
from chatgate.gateway import Authenticator, ModelRegistry
from chatgate.gateway.embeddings import EmbeddingModels
from chatgate.protocol import ModelList, ModelNotFoundError, ModelObject

__all__ = ["ModelEndpoints"]


class ModelEndpoints:
    def __init__(
        self,
        registry: ModelRegistry,
        authenticator: Authenticator,
        auto: list[str] | None = None,
        embedding_models: EmbeddingModels | None = None,
    ):
        self._registry = registry
        self._auth = authenticator
        self._auto = auto or []
        self._embedding = embedding_models or EmbeddingModels([])

    async def list(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "models")
        data = [
            g.model_object()
            for g in self._registry.groups
            if principal.may_use_model(g.name, g.aliases)
        ]
        data += [self._auto_object(n) for n in self._auto if principal.may_use_model(n)]
        data += [
            m.model_object()
            for m in self._embedding.all()
            if principal.may_use_model(m.name, m.aliases)
        ]
        models: ModelList = {"object": "list", "data": data}
        return json_response(models)

    async def retrieve(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "models")
        model_id = request.path_params["model"]
        if model_id in self._auto:
            return json_response(self._auto_object(model_id))
        if model_id in self._embedding:
            embedding = self._embedding.resolve(model_id)
            if not principal.may_use_model(embedding.name, embedding.aliases):
                raise ModelNotFoundError(model_id)
            return json_response(embedding.model_object(model_id))
        group = self._registry.resolve(model_id)
        if not principal.may_use_model(group.name, group.aliases):
            raise ModelNotFoundError(model_id)
        return json_response(self._registry.model(model_id))

    def _auto_object(self, name: str) -> ModelObject:
        groups = self._registry.groups
        created = groups[0].created if groups else 0
        return {"id": name, "object": "model", "created": created, "owned_by": "chatgate"}

    async def health(self, request: Request) -> Response:
        states = {**self._registry.states(), **self._embedding.states()}
        values = set(states.values())
        status = "ok" if values <= {"ready"} else "failed" if "failed" in values else "loading"
        return json_response({"status": status, "models": states}, 200 if status == "ok" else 503)
