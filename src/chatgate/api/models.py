"""``GET /v1/models``, ``GET /v1/models/{model}`` and ``GET /health``."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.gateway import Authenticator, ModelRegistry
from chatgate.protocol import ModelList, ModelNotFoundError

__all__ = ["ModelEndpoints"]


def _json(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class ModelEndpoints:
    def __init__(self, registry: ModelRegistry, authenticator: Authenticator):
        self._registry = registry
        self._auth = authenticator

    async def list(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "models")
        data = [m for m in self._registry.models() if principal.may_use_model(m["id"])]
        models: ModelList = {"object": "list", "data": data}
        return _json(models)

    async def retrieve(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "models")
        model_id = request.path_params["model"]
        if not principal.may_use_model(model_id):
            raise ModelNotFoundError(model_id)
        return _json(self._registry.model(model_id))

    async def health(self, request: Request) -> Response:
        states = self._registry.states()
        values = set(states.values())
        status = "ok" if values <= {"ready"} else "failed" if "failed" in values else "loading"
        return _json({"status": status, "models": states}, 200 if status == "ok" else 503)
