"""The Starlette application: routes, error rendering, and the lifespan that starts providers."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from chatgate.api.admin import AdminEndpoints
from chatgate.api.batches import BatchEndpoints
from chatgate.api.chat import ChatEndpoint
from chatgate.api.embeddings import EmbeddingEndpoint
from chatgate.api.experiments import ExperimentEndpoints
from chatgate.api.files import FileEndpoints
from chatgate.api.governed import Governed
from chatgate.api.limits import BodyLimitMiddleware
from chatgate.api.middleware import RequestIdMiddleware
from chatgate.api.models import ModelEndpoints
from chatgate.api.moderations import ModerationEndpoint
from chatgate.api.openapi import openapi_document
from chatgate.api.pages import Pages
from chatgate.api.prompts import PromptEndpoints
from chatgate.api.tokenize import TokenizeEndpoint
from chatgate.api.tokens import TokenEndpoint
from chatgate.api.vector_stores import VectorStoreEndpoints
from chatgate.config import Settings, load_settings
from chatgate.gateway.services import Services
from chatgate.gateway.telemetry import Telemetry
from chatgate.logs import configure_logging
from chatgate.protocol import ChatgateError, error_body

__all__ = ["EXPOSED_HEADERS", "app_from_environment", "create_app"]

EXPOSED_HEADERS = [
    "x-request-id",
    "server-timing",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-chatgate-cost",
    "x-chatgate-cache",
    "x-chatgate-context-dropped-messages",
    "x-chatgate-context-dropped-tokens",
    "x-chatgate-max-tokens-clamped",
]
"""Response headers a browser page may read across origins: what a chat UI shows (request id,
timing, cost, turns left out to fit the context window) and what it needs to wait out a 429
(``retry-after``, OpenAI's rate-limit headers)."""

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
        orjson.dumps(exc.to_body()),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
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


def _middleware(settings: Settings) -> list[Middleware]:
    # No compression middleware: a gzip layer would buffer server-sent events (any added later
    # must exclude text/event-stream, as Starlette's GZipMiddleware does).
    stack = [
        Middleware(RequestIdMiddleware),
        Middleware(
            BodyLimitMiddleware,
            max_body_bytes=settings.server.max_body_bytes,
            max_upload_bytes=settings.files.max_bytes,
        ),
    ]
    cors = settings.cors
    if cors.allow_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors.allow_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=cors.allow_headers,
                expose_headers=EXPOSED_HEADERS,
                max_age=cors.max_age,
            )
        )
    return stack


def create_app(settings: Settings, *, telemetry: Telemetry | None = None) -> Starlette:
    services = Services(settings, telemetry=telemetry)
    auth = services.authenticator
    governed = Governed(auth, services.observer, services.pipeline)
    models = ModelEndpoints(
        services.registry,
        auth,
        [a.name for a in settings.auto_models],
        services.embedding_models,
    )
    admin = AdminEndpoints(services)
    tokenize = TokenizeEndpoint(services.registry, auth)
    prompts = PromptEndpoints(services.prompts, auth)
    moderations = ModerationEndpoint(services.moderations, governed)
    embeddings = EmbeddingEndpoint(services.embedding_models, governed)
    vector_stores = VectorStoreEndpoints(services.vector_stores, auth, governed)
    experiments = ExperimentEndpoints(
        settings.experiments, services.feedback, auth, services.observer, services.request_log
    )
    files = FileEndpoints(services.files, auth, settings.files, governed)
    batches = BatchEndpoints(
        services.batches,
        services.files,
        auth,
        services.batch_runner,
        governed,
    )
    document = orjson.dumps(openapi_document())
    pages = Pages(services.embedding_models.names())

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        _settle_heap()
        try:
            yield
        finally:
            await services.close()

    app = Starlette(
        routes=[
            Route(
                "/v1/chat/completions",
                ChatEndpoint(governed).handle,
                methods=["POST"],
            ),
            Route("/v1/models", models.list, methods=["GET"]),
            Route("/v1/moderations", moderations.create, methods=["POST"]),
            Route("/v1/embeddings", embeddings.create, methods=["POST"]),
            *(
                Route(path, handler, methods=[method])
                for path, handler, method in vector_stores.routes()
            ),
            Route("/v1/feedback", experiments.feedback, methods=["POST"]),
            Route("/v1/files", files.create, methods=["POST"]),
            Route("/v1/files", files.list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", files.retrieve, methods=["GET"]),
            Route("/v1/files/{file_id}", files.delete, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", files.content, methods=["GET"]),
            Route("/v1/batches", batches.create, methods=["POST"]),
            Route("/v1/batches", batches.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", batches.retrieve, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", batches.cancel, methods=["POST"]),
            Route("/v1/batches/{batch_id}/results", batches.results, methods=["GET"]),
            Route("/admin/experiments", experiments.list_experiments, methods=["GET"]),
            Route("/admin/experiments/{name}/report", experiments.report, methods=["GET"]),
            Route("/v1/models/{model:path}", models.retrieve, methods=["GET"]),
            Route("/v1/tokens", TokenEndpoint(auth).mint, methods=["POST"]),
            Route("/tokenize", tokenize.count, methods=["POST"]),
            Route("/admin/keys", admin.create_key, methods=["POST"]),
            Route("/admin/keys", admin.list_keys, methods=["GET"]),
            Route("/admin/keys/{key_id}", admin.get_key, methods=["GET"]),
            Route("/admin/keys/{key_id}", admin.update_key, methods=["PATCH"]),
            Route("/admin/keys/{key_id}", admin.revoke_key, methods=["DELETE"]),
            Route("/admin/keys/{key_id}/rotate", admin.rotate_key, methods=["POST"]),
            Route("/admin/audit", admin.audit, methods=["GET"]),
            Route("/admin/prompts", prompts.push, methods=["POST"]),
            Route("/admin/prompts", prompts.list_prompts, methods=["GET"]),
            Route("/admin/prompts/{prompt_id}", prompts.get_prompt, methods=["GET"]),
            Route("/admin/prompts/{prompt_id}/history", prompts.history, methods=["GET"]),
            Route("/admin/prompts/{prompt_id}/render", prompts.render, methods=["POST"]),
            Route(
                "/admin/prompts/{prompt_id}/versions/{version}",
                prompts.get_version,
                methods=["GET"],
            ),
            Route("/admin/prompts/{prompt_id}/labels/{label}", prompts.set_label, methods=["PUT"]),
            Route(
                "/admin/prompts/{prompt_id}/labels/{label}/rollback",
                prompts.rollback,
                methods=["POST"],
            ),
            Route("/admin/limits", admin.limits, methods=["GET"]),
            Route("/admin/routing", admin.routing, methods=["GET"]),
            Route("/admin/usage", admin.usage, methods=["GET"]),
            Route("/admin/usage/storage", admin.storage, methods=["GET"]),
            Route("/admin/requests/{request_id}/bodies", admin.bodies, methods=["GET"]),
            Route("/admin/dashboard", admin.dashboard_data, methods=["GET"]),
            Route("/dashboard", pages.dashboard, methods=["GET"]),
            Route("/", pages.root, methods=["GET"]),
            Route("/playground", pages.playground, methods=["GET"]),
            Route("/widget.js", pages.widget, methods=["GET"]),
            Mount("/static", StaticFiles(packages=[("chatgate.api", "static")]), name="static"),
            Route("/admin/regressions", admin.regressions, methods=["GET"]),
            Route("/metrics", admin.metrics, methods=["GET"]),
            Route("/health", models.health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=_middleware(settings),
        exception_handlers={ChatgateError: _chatgate_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    return app


def _settle_heap() -> None:
    """Move everything built at start-up (modules, config, pipeline, model handles) out of the
    collector's reach: a full collection over that heap stalls the event loop for
    milliseconds, which is what a p99 sees."""
    gc.collect()
    gc.freeze()


def app_from_environment() -> Starlette:
    """Factory for ASGI servers: settings from ``CHATGATE_CONFIG`` and ``CHATGATE_*``."""
    settings = load_settings()
    configure_logging(settings.server.log_level)
    return create_app(settings)
