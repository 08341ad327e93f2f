"""The OpenAPI paths of chatgate's data APIs: files (and batches)."""

from __future__ import annotations

from typing import Any

from chatgate.api._schema import _json, _operation, _path_param, _query_param
from chatgate.protocol.files import UPLOAD_PURPOSES

__all__ = ["data_paths"]

_FILE = {
    "type": "object",
    "required": ["id", "object", "bytes", "created_at", "filename", "purpose", "status"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "file"},
        "bytes": {"type": "integer"},
        "created_at": {"type": "integer"},
        "expires_at": {"type": ["integer", "null"]},
        "filename": {"type": "string"},
        "purpose": {"type": "string"},
        "status": {"type": "string"},
    },
}


def data_paths(auth_errors: tuple[int, ...]) -> dict[str, Any]:
    file_id = (_path_param("file_id"),)
    upload = _operation("createFile", _json(_FILE, "The stored file"), errors=(400, *auth_errors))
    upload["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES)},
                    },
                }
            }
        },
    }
    batch_id = (_path_param("batch_id"),)
    batch = _json({"type": "object", "required": ["id", "object", "status"]}, "A batch")
    return {
        "/v1/batches": {
            "post": _operation(
                "createBatch", batch, body="BatchCreateRequest", errors=(400, *auth_errors, 404)
            ),
            "get": _operation(
                "listBatches",
                _json({"type": "object"}, "A page of batches"),
                errors=(400, *auth_errors),
                parameters=tuple(_query_param(n) for n in ("limit", "after")),
            ),
        },
        "/v1/batches/{batch_id}": {
            "get": _operation(
                "retrieveBatch", batch, errors=(*auth_errors, 404), parameters=batch_id
            ),
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": _operation(
                "cancelBatch", batch, errors=(*auth_errors, 404, 409), parameters=batch_id
            ),
        },
        "/v1/batches/{batch_id}/results": {
            "get": {
                "operationId": "batchResults",
                "parameters": [*batch_id, _query_param("kind")],
                "responses": {
                    "200": {
                        "description": "Committed result lines so far (JSONL)",
                        "content": {"application/jsonl": {"schema": {"type": "string"}}},
                    },
                    "400": _json({"$ref": "#/components/schemas/Error"}, "Error in OpenAI's shape"),
                    "404": _json({"$ref": "#/components/schemas/Error"}, "Error in OpenAI's shape"),
                },
            }
        },
        "/v1/files": {
            "post": upload,
            "get": _operation(
                "listFiles",
                _json({"type": "object"}, "A page of files"),
                errors=(400, *auth_errors),
                parameters=tuple(_query_param(n) for n in ("purpose", "limit", "order", "after")),
            ),
        },
        "/v1/files/{file_id}": {
            "get": _operation(
                "retrieveFile",
                _json(_FILE, "A file"),
                errors=(*auth_errors, 404),
                parameters=file_id,
            ),
            "delete": _operation(
                "deleteFile",
                _json({"type": "object"}, "The file, deleted"),
                errors=(*auth_errors, 404),
                parameters=file_id,
            ),
        },
        "/v1/files/{file_id}/content": {
            "get": {
                "operationId": "downloadFile",
                "parameters": list(file_id),
                "responses": {
                    "200": {
                        "description": "The file's bytes",
                        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                    },
                    "404": _json({"$ref": "#/components/schemas/Error"}, "Error in OpenAI's shape"),
                },
            }
        },
    }
