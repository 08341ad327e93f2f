"""chatgate's own OpenAPI document, generated once from the wire types."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from chatgate import __version__
from chatgate.api._schema import _json, _list_of, _operation, _path_param, _ref
from chatgate.api.openapi_data import data_paths
from chatgate.api.openapi_retrieval import retrieval_paths
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    TokenizePromptRequest,
    TokenizeResponse,
)
from chatgate.protocol.admin import (
    ApiKeyObject,
    AuditEntryObject,
    KeyCreateRequest,
    KeyRotateRequest,
    KeyUpdateRequest,
    TokenObject,
    TokenRequest,
)
from chatgate.protocol.batches import BatchCreateRequest
from chatgate.protocol.embeddings import EmbeddingResponse
from chatgate.protocol.feedback import FeedbackRequest
from chatgate.protocol.models import ModelList, ModelObject
from chatgate.protocol.moderations import ModerationRequest, ModerationResponse
from chatgate.protocol.prompts import PromptLabelRequest, PromptPush, PromptVersionObject

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_TYPES: dict[str, Any] = {
    "ChatCompletionRequest": ChatCompletionRequest,
    "ChatCompletion": ChatCompletion,
    "ChatCompletionChunk": ChatCompletionChunk,
    "Model": ModelObject,
    "ModelList": ModelList,
    "KeyCreateRequest": KeyCreateRequest,
    "KeyRotateRequest": KeyRotateRequest,
    "KeyUpdateRequest": KeyUpdateRequest,
    "ApiKey": ApiKeyObject,
    "TokenRequest": TokenRequest,
    "Token": TokenObject,
    "AuditEntry": AuditEntryObject,
    "TokenizeRequest": TokenizePromptRequest | ChatCompletionRequest,
    "TokenizeResponse": TokenizeResponse,
    "BatchCreateRequest": BatchCreateRequest,
    "FeedbackRequest": FeedbackRequest,
    "EmbeddingResponse": EmbeddingResponse,
    "ModerationRequest": ModerationRequest,
    "ModerationResponse": ModerationResponse,
    "PromptLabelRequest": PromptLabelRequest,
    "PromptPush": PromptPush,
    "PromptVersion": PromptVersionObject,
}


def _prompt_paths(auth_errors: tuple[int, ...]) -> dict[str, Any]:
    prompt_id = _path_param("prompt_id")
    label = (prompt_id, _path_param("label"))
    version = _json(_ref("PromptVersion"), "A prompt version")
    moved = _json({"type": "object"}, "Where the label points now, and where it pointed before")
    return {
        "/admin/prompts": {
            "post": _operation(
                "pushPrompt",
                version,
                body="PromptPush",
                errors=(400, *auth_errors),
                status="201",
            ),
            "get": _operation(
                "listPrompts", _json({"type": "object"}, "Prompts"), errors=auth_errors
            ),
        },
        "/admin/prompts/{prompt_id}": {
            "get": _operation(
                "getPrompt",
                _json({"type": "object"}, "A prompt's versions and labels"),
                errors=(*auth_errors, 404),
                parameters=(prompt_id,),
            )
        },
        "/admin/prompts/{prompt_id}/versions/{version}": {
            "get": _operation(
                "getPromptVersion",
                version,
                errors=(400, *auth_errors, 404),
                parameters=(prompt_id, _path_param("version")),
            )
        },
        "/admin/prompts/{prompt_id}/history": {
            "get": _operation(
                "promptLabelHistory",
                _json({"type": "object"}, "Every move of the prompt's labels"),
                errors=(*auth_errors, 404),
                parameters=(prompt_id,),
            )
        },
        "/admin/prompts/{prompt_id}/render": {
            "post": _operation(
                "renderPrompt",
                _json({"type": "object"}, "The rendered messages"),
                errors=(400, *auth_errors),
                parameters=(prompt_id,),
            )
        },
        "/admin/prompts/{prompt_id}/labels/{label}": {
            "put": _operation(
                "setPromptLabel",
                moved,
                body="PromptLabelRequest",
                errors=(400, *auth_errors, 404, 409),
                parameters=label,
            )
        },
        "/admin/prompts/{prompt_id}/labels/{label}/rollback": {
            "post": _operation(
                "rollbackPromptLabel", moved, errors=(400, *auth_errors, 404), parameters=label
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    for name, tp in _TYPES.items():
        schema = TypeAdapter(tp).json_schema(ref_template=_REF, mode="validation")
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    chat_ok = _json(_ref("ChatCompletion"), "A chat completion, or an SSE stream of chunks")
    chat_ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    auth_errors = (401, 403)
    key = _json(_ref("ApiKey"), "A key")
    key_id = (_path_param("key_id"),)
    keys = _json(_list_of("ApiKey"), "Keys")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatgate",
            "version": __version__,
            "description": "OpenAI-compatible ChatGPT-API gateway.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/chat/completions": {
                "post": _operation(
                    "createChatCompletion",
                    chat_ok,
                    body="ChatCompletionRequest",
                    errors=(400, *auth_errors, 404, 429, 500, 502, 503, 504),
                )
            },
            "/v1/models": {
                "get": _operation(
                    "listModels", _json(_ref("ModelList"), "Models you may use"), errors=(401,)
                )
            },
            "/v1/models/{model}": {
                "get": _operation(
                    "retrieveModel",
                    _json(_ref("Model"), "One model"),
                    errors=(401, 404),
                    parameters=(_path_param("model"),),
                )
            },
            "/v1/moderations": {
                "post": _operation(
                    "createModeration",
                    _json(_ref("ModerationResponse"), "Moderation results, one per input"),
                    body="ModerationRequest",
                    errors=(400, *auth_errors),
                )
            },
            "/v1/feedback": {
                "post": _operation(
                    "createFeedback",
                    _json({"type": "object"}, "The feedback, stored"),
                    body="FeedbackRequest",
                    errors=(400, *auth_errors),
                    status="201",
                )
            },
            "/admin/experiments": {
                "get": _operation(
                    "listExperiments",
                    _json({"type": "object"}, "Configured experiments"),
                    errors=auth_errors,
                )
            },
            "/admin/experiments/{name}/report": {
                "get": _operation(
                    "experimentReport",
                    _json({"type": "object"}, "Per-variant results, comparisons, decision"),
                    errors=(*auth_errors, 404),
                    parameters=(_path_param("name"),),
                )
            },
            "/v1/tokens": {
                "post": _operation(
                    "createBrowserToken",
                    _json(_ref("Token"), "A short-lived browser token"),
                    body="TokenRequest",
                    errors=(400, *auth_errors),
                )
            },
            "/tokenize": {
                "post": _operation(
                    "tokenize",
                    _json(_ref("TokenizeResponse"), "Tokens of the prompt"),
                    body="TokenizeRequest",
                    errors=(400, 401, 404),
                )
            },
            "/admin/keys": {
                "post": _operation(
                    "createKey",
                    key,
                    body="KeyCreateRequest",
                    errors=(400, *auth_errors),
                    status="201",
                ),
                "get": _operation("listKeys", keys, errors=auth_errors),
            },
            "/admin/keys/{key_id}": {
                "get": _operation("getKey", key, errors=(*auth_errors, 404), parameters=key_id),
                "patch": _operation(
                    "updateKey",
                    key,
                    body="KeyUpdateRequest",
                    errors=(400, *auth_errors, 404),
                    parameters=key_id,
                ),
                "delete": _operation(
                    "revokeKey", key, errors=(*auth_errors, 404), parameters=key_id
                ),
            },
            "/admin/keys/{key_id}/rotate": {
                "post": _operation(
                    "rotateKey",
                    key,
                    body="KeyRotateRequest",
                    errors=(400, *auth_errors, 404),
                    parameters=key_id,
                )
            },
            "/admin/audit": {
                "get": _operation(
                    "listAudit", _json(_list_of("AuditEntry"), "Admin actions"), errors=auth_errors
                )
            },
            **_prompt_paths(auth_errors),
            **data_paths(auth_errors),
            **retrieval_paths(auth_errors),
            "/admin/limits": {
                "get": _operation(
                    "limitsStatus",
                    _json({"type": "object"}, "Requests waiting for capacity, and waits"),
                    errors=auth_errors,
                )
            },
            "/admin/routing": {
                "get": _operation(
                    "routingStatus",
                    _json({"type": "object"}, "Deployments, their load and breaker state"),
                    errors=auth_errors,
                )
            },
            "/admin/usage": {
                "get": _operation(
                    "usageReport",
                    _json({"type": "object"}, "Requests, tokens, cost and latency per group"),
                    errors=(400, *auth_errors),
                    parameters=tuple(
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("group_by", "from", "to")
                    ),
                )
            },
            "/admin/usage/storage": {
                "get": _operation(
                    "storageReport",
                    _json({"type": "object"}, "Vector storage in GB-days and its cost per group"),
                    errors=(400, *auth_errors),
                    parameters=tuple(
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("group_by", "from", "to")
                    ),
                )
            },
            "/admin/regressions": {
                "get": _operation(
                    "regressions",
                    _json({"type": "object"}, "The last window against a baseline, per model"),
                    errors=(400, *auth_errors),
                    parameters=tuple(
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("window", "baseline")
                    ),
                )
            },
            "/admin/requests/{request_id}/bodies": {
                "get": _operation(
                    "requestBodies",
                    _json({"type": "object"}, "A request's stored bodies, decrypted"),
                    errors=(*auth_errors, 404),
                    parameters=(_path_param("request_id"),),
                )
            },
            "/admin/dashboard": {
                "get": _operation(
                    "dashboardData",
                    _json({"type": "object"}, "Time series and tables for the dashboard"),
                    errors=(400, *auth_errors),
                    parameters=(
                        {
                            "name": "hours",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ),
                )
            },
            "/dashboard": {
                "get": {
                    "operationId": "dashboard",
                    "security": [],
                    "responses": {"200": {"description": "The dashboard page (HTML)"}},
                }
            },
            "/": {
                "get": {
                    "operationId": "root",
                    "security": [],
                    "responses": {"307": {"description": "Redirects to `/playground`"}},
                }
            },
            "/playground": {
                "get": {
                    "operationId": "playground",
                    "security": [],
                    "responses": {"200": {"description": "The chat playground page (HTML)"}},
                }
            },
            "/widget.js": {
                "get": {
                    "operationId": "widgetScript",
                    "security": [],
                    "responses": {
                        "200": {"description": "The embeddable chat widget (JavaScript)"},
                        "304": {"description": "Not modified (`If-None-Match`)"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _json(_ref("Error"), "Error in OpenAI's shape"),
                    },
                }
            },
            "/health": {
                "get": _operation(
                    "health",
                    {"description": "Every model is ready"},
                    errors=(503,),
                    public=True,
                )
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
