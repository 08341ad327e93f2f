"""The OpenAPI paths of chatgate's retrieval APIs: embeddings (and vector stores)."""

from __future__ import annotations

from typing import Any

from chatgate.api._schema import _json, _operation, _ref
from chatgate.protocol.embeddings import MAX_EMBEDDING_INPUTS

__all__ = ["retrieval_paths"]

_TOKENS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}

_EMBEDDING_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_EMBEDDING_INPUTS,
                    "items": {"type": "string", "minLength": 1},
                },
                _TOKENS,
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_EMBEDDING_INPUTS,
                    "items": _TOKENS,
                },
            ]
        },
        "encoding_format": {"enum": ["float", "base64"], "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
    },
}


def retrieval_paths(auth_errors: tuple[int, ...]) -> dict[str, Any]:
    embeddings = _operation(
        "createEmbedding",
        _json(_ref("EmbeddingResponse"), "One vector per input, in input order"),
        errors=(400, *auth_errors, 404, 502, 503),
    )
    embeddings["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _EMBEDDING_REQUEST}},
    }
    return {"/v1/embeddings": {"post": embeddings}}
