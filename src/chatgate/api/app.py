"""The Starlette application: routes, error rendering, and the lifespan that starts providers."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatgate.api.chat import ChatEndpoint
from chatgate.api.middleware import RequestIdMiddleware
from chatgate.api.models import ModelEndpoints
from chatgate.api.openapi import openapi_document
from chatgate.config import Settings, load_settings
from chatgate.gateway import DeadlineStage, ModelRegistry, Pipeline
from chatgate.protocol import ChatgateError, error_body

__all__ = ["app_from_environment", "create_app"]

log = logging.getLogger("chatgate.api")


async def _chatgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatgateError)
    if exc.status_code >= 500:
        log.error(
            "request %s failed: %s (%s)",
            getattr(request.state, "request_id", "?"),
            exc.message,
            exc.code,
        )
    return Response(
        orjson.dumps(exc.to_body()), status_code=exc.status_code, media_type="application/json"
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        code = "unknown_url"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
        code = "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    body = error_body(message, "invalid_request_error", None, code)
    return Response(
        orjson.dumps(body),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
    )


def create_app(settings: Settings) -> Starlette:
    registry = ModelRegistry.from_settings(settings, created=int(time.time()))
    pipeline = Pipeline(
        registry, [DeadlineStage()], request_timeout=settings.server.request_timeout
    )
    models = ModelEndpoints(registry)
    document = orjson.dumps(openapi_document())

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await registry.start()
        try:
            yield
        finally:
            await registry.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", ChatEndpoint(pipeline).handle, methods=["POST"]),
            Route("/v1/models", models.list, methods=["GET"]),
            Route("/v1/models/{model:path}", models.retrieve, methods=["GET"]),
            Route("/health", models.health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={ChatgateError: _chatgate_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.pipeline = pipeline
    return app


def app_from_environment() -> Starlette:
    """Factory for ASGI servers: settings from ``CHATGATE_CONFIG`` and ``CHATGATE_*``."""
    return create_app(load_settings())
