"""A batch's input file checked line by line, the way OpenAI does in ``validating``: every line
a JSON object with a unique ``custom_id``, ``method: POST``, the batch's ``url`` and a ``body``
object. Errors name the line; none of the batch is loaded unless every line is sound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["BATCH_ENDPOINTS", "MAX_EMBEDDING_INPUTS", "InputCheck", "check_input"]

BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/moderations")
_MAX_ERRORS = 100
MAX_EMBEDDING_INPUTS = 50_000
"""OpenAI's cap on embedding inputs across all requests of one ``/v1/embeddings`` batch."""


def _inputs(body: dict[str, Any]) -> int:
    """How many embedding inputs a request body holds (a string or a token array is one)."""
    value = body.get("input")
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


@dataclass(slots=True)
class InputCheck:
    lines: list[tuple[int, str, bytes]]
    """(line number, custom_id, the line as received)."""
    errors: list[dict[str, Any]]
    model: str | None


def _error(code: str, message: str, line: int, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def check_input(content: bytes, endpoint: str, max_lines: int) -> InputCheck:
    check = InputCheck([], [], None)
    seen: set[str] = set()
    models: set[str] = set()
    inputs = 0
    for number, raw in enumerate(content.splitlines(), 1):
        if len(check.errors) >= _MAX_ERRORS:
            break
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            check.errors.append(_error("invalid_json_line", "This line is not valid JSON.", number))
            continue
        if not isinstance(item, dict):
            check.errors.append(
                _error("invalid_json_line", "A line must be a JSON object.", number)
            )
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
            check.errors.append(
                _error(
                    "missing_required_parameter",
                    "`custom_id` must be a non-empty string (at most 512 characters).",
                    number,
                    "custom_id",
                )
            )
            continue
        if custom_id in seen:
            check.errors.append(
                _error(
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} appears more than once.",
                    number,
                    "custom_id",
                )
            )
            continue
        seen.add(custom_id)
        if item.get("method") != "POST":
            check.errors.append(
                _error("invalid_method", "`method` must be `POST`.", number, "method")
            )
            continue
        if item.get("url") != endpoint:
            check.errors.append(
                _error(
                    "mismatched_endpoint",
                    f"`url` must be the batch's endpoint `{endpoint}`.",
                    number,
                    "url",
                )
            )
            continue
        body = item.get("body")
        if not isinstance(body, dict):
            check.errors.append(
                _error(
                    "missing_required_parameter", "`body` must be a JSON object.", number, "body"
                )
            )
            continue
        if isinstance(body.get("model"), str):
            models.add(body["model"])
        if endpoint == "/v1/embeddings":
            inputs += _inputs(body)
        check.lines.append((number, custom_id, raw))
    if not check.lines and not check.errors:
        check.errors.append(_error("empty_file", "The input file has no requests.", 1))
    if len(check.lines) > max_lines:
        check.errors.append(
            _error("too_many_requests", f"A batch may hold at most {max_lines} requests.", 1)
        )
    if inputs > MAX_EMBEDDING_INPUTS:
        check.errors.append(
            _error(
                "too_many_inputs",
                f"An embeddings batch may hold at most {MAX_EMBEDDING_INPUTS} inputs across all "
                f"its requests; this one has {inputs}.",
                1,
            )
        )
    check.model = models.pop() if len(models) == 1 else None
    return check
