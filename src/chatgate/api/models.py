"""``GET /v1/models``, ``GET /v1/models/{model}`` and ``GET /health``."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chatgate.gateway import ModelRegistry
from chatgate.protocol import ModelList

__all__ = ["ModelEndpoints"]


def _json(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class ModelEndpoints:
    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    async def list(self, request: Request) -> Response:
        models: ModelList = {"object": "list", "data": self._registry.models()}
        return _json(models)

    async def retrieve(self, request: Request) -> Response:
        return _json(self._registry.model(request.path_params["model"]))

    async def health(self, request: Request) -> Response:
        readiness = self._registry.readiness()
        ready = all(readiness.values())
        body = {
            "status": "ok" if ready else "loading",
            "models": {name: "ready" if ok else "loading" for name, ok in readiness.items()},
        }
        return _json(body, 200 if ready else 503)
