"""chatgate's own OpenAPI document, generated once from the wire types."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from chatgate import __version__
from chatgate.protocol import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from chatgate.protocol.models import ModelList, ModelObject

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


def _schema(tp: Any, components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = TypeAdapter(tp).json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    return schema


def _errors(*statuses: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        str(s): {"description": "Error", "content": {"application/json": {"schema": ref}}}
        for s in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    for name, tp in (
        ("ChatCompletionRequest", ChatCompletionRequest),
        ("ChatCompletion", ChatCompletion),
        ("ChatCompletionChunk", ChatCompletionChunk),
        ("Model", ModelObject),
        ("ModelList", ModelList),
    ):
        components[name] = _schema(tp, components, "validation")

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    chat_ok = _json(ref("ChatCompletion"), "A chat completion, or an SSE stream of chunks")
    chat_ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatgate",
            "version": __version__,
            "description": "OpenAI-compatible ChatGPT-API gateway.",
        },
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("ChatCompletionRequest")}},
                    },
                    "responses": {"200": chat_ok, **_errors(400, 404, 500, 503, 504)},
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "responses": {"200": _json(ref("ModelList"), "Models this server serves")},
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "operationId": "retrieveModel",
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _json(ref("Model"), "One model"), **_errors(404)},
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {
                        "200": {"description": "Every model is ready"},
                        "503": {"description": "A model is still loading"},
                    },
                }
            },
        },
        "components": {"schemas": components},
    }
