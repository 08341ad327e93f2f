"""Helpers that build chatgate's OpenAPI document: references, JSON bodies, operations."""

from __future__ import annotations

from typing import Any

__all__ = ["_json", "_list_of", "_operation", "_path_param", "_query_param", "_ref"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref(name)}},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    operation_id: str,
    ok: dict[str, Any],
    *,
    body: str | None = None,
    errors: tuple[int, ...] = (),
    parameters: tuple[dict[str, Any], ...] = (),
    status: str = "200",
    public: bool = False,
) -> dict[str, Any]:
    error = _json(_ref("Error"), "Error in OpenAI's shape")
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "responses": {status: ok, **{str(s): error for s in errors}},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if parameters:
        operation["parameters"] = list(parameters)
    if public:
        operation["security"] = []
    return operation


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
