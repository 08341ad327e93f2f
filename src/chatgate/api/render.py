"""Rendering JSON answers: one helper for every endpoint, and OpenAI's list page shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["json_response", "list_page"]


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
