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
        states = self._registry.states()
        values = set(states.values())
        status = "ok" if values <= {"ready"} else "failed" if "failed" in values else "loading"
        return _json({"status": status, "models": states}, 200 if status == "ok" else 503)
