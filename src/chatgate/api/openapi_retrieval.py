"""The OpenAPI paths of chatgate's retrieval APIs: embeddings (and vector stores)."""

from __future__ import annotations

from typing import Any

from chatgate.api._schema import _json, _operation, _path_param, _query_param, _ref
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


def _object(kind: str, *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["object", *required],
        "properties": {"object": {"const": kind}},
    }


_STORE = _object("vector_store", "id", "created_at", "file_counts", "status", "usage_bytes")
_FILE = _object("vector_store.file", "id", "vector_store_id", "status", "last_error")
_BATCH = _object("vector_store.files_batch", "id", "vector_store_id", "status", "file_counts")
_PAGE = {"type": "object", "required": ["object", "data", "has_more"]}
_SEARCH = _object("vector_store.search_results.page", "search_query", "data", "has_more")
_DELETED = {"type": "object", "required": ["id", "object", "deleted"]}
_BODY = {"type": "object"}


def _with_body(operation: dict[str, Any]) -> dict[str, Any]:
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _BODY}},
    }
    return operation


def _vector_store_paths(auth_errors: tuple[int, ...]) -> dict[str, Any]:
    errors = (400, *auth_errors, 404)
    store = (_path_param("vector_store_id"),)
    file = (*store, _path_param("file_id"))
    batch = (*store, _path_param("batch_id"))
    paging = tuple(_query_param(n) for n in ("limit", "after", "order"))
    one = "/v1/vector_stores/{vector_store_id}"
    batch_path = one + "/file_batches/{batch_id}"

    def op(name: str, ok: dict[str, Any], description: str, **kw: Any) -> dict[str, Any]:
        return _operation(name, _json(ok, description), errors=errors, **kw)

    return {
        "/v1/vector_stores": {
            "post": _with_body(op("createVectorStore", _STORE, "The new vector store")),
            "get": op("listVectorStores", _PAGE, "A page of vector stores", parameters=paging),
        },
        one: {
            "get": op("getVectorStore", _STORE, "The vector store", parameters=store),
            "post": _with_body(
                op("modifyVectorStore", _STORE, "The changed store", parameters=store)
            ),
            "delete": op("deleteVectorStore", _DELETED, "Deleted", parameters=store),
        },
        one + "/search": {
            "post": _with_body(
                op("searchVectorStore", _SEARCH, "The best chunks", parameters=store)
            )
        },
        one + "/files": {
            "post": _with_body(
                op("createVectorStoreFile", _FILE, "The attached file", parameters=store)
            ),
            "get": op(
                "listVectorStoreFiles",
                _PAGE,
                "A page of files",
                parameters=(*store, *paging, _query_param("filter")),
            ),
        },
        one + "/files/{file_id}": {
            "get": op("getVectorStoreFile", _FILE, "The file", parameters=file),
            "post": _with_body(
                op("updateVectorStoreFileAttributes", _FILE, "The file", parameters=file)
            ),
            "delete": op("deleteVectorStoreFile", _DELETED, "Detached", parameters=file),
        },
        one + "/files/{file_id}/content": {
            "get": op("retrieveVectorStoreFileContent", _PAGE, "Its chunks", parameters=file)
        },
        one + "/file_batches": {
            "post": _with_body(
                op("createVectorStoreFileBatch", _BATCH, "The batch", parameters=store)
            )
        },
        batch_path: {"get": op("getVectorStoreFileBatch", _BATCH, "The batch", parameters=batch)},
        batch_path + "/cancel": {
            "post": op("cancelVectorStoreFileBatch", _BATCH, "The batch", parameters=batch)
        },
        batch_path + "/files": {
            "get": op(
                "listFilesInVectorStoreBatch",
                _PAGE,
                "A page of the batch's files",
                parameters=(*batch, *paging, _query_param("filter")),
            )
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
    return {"/v1/embeddings": {"post": embeddings}, **_vector_store_paths(auth_errors)}
