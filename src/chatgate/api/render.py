"""Rendering JSON answers: one helper for every endpoint, and OpenAI's list page shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chatgate.protocol import InvalidRequestError

__all__ = ["json_response", "list_page", "page_params"]


def json_response(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def list_page(data: Sequence[Mapping[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page: ``data`` plus ``first_id``, ``last_id`` and ``has_more``."""
    return {
        "object": "list",
        "data": list(data),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def page_params(request: Request, *, default: int = 20) -> tuple[str | None, int, bool]:
    """OpenAI's page parameters: ``after``, ``limit`` (1..100) and ``order`` (``asc``/``desc``,
    newest first by default) as ``(after, limit, descending)``."""
    params = request.query_params
    try:
        limit = int(params.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequestError("`limit` must be between 1 and 100.", param="limit")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("`order` must be `asc` or `desc`.", param="order")
    return params.get("after") or None, limit, order == "desc"
