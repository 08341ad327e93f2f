"""Turn request bytes into wire types, or an ``InvalidRequestError`` naming the bad parameter."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from chatgate.protocol.chat import _FieldError
from chatgate.protocol.errors import InvalidRequestError

__all__ = ["parse_json_object", "validate"]

_M = TypeVar("_M", bound=BaseModel)

# Members of a union that pydantic puts into an error's location: type names such as
# ``str``, ``list[str]``, ``literal['none','auto']`` or ``function-after[...]``, and model names.
_UNION_MEMBER = re.compile(r"^([a-z-]+\[.*\]|str|int|float|bool|none|[A-Z]\w*)$")
_ROLE_TAGS = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_PART_TAGS = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return data


def validate(model: type[_M], data: dict[str, Any]) -> _M:
    """Validate ``data`` into ``model``, reporting the first problem the way OpenAI does."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_request(exc.errors(include_url=False)) from None


def _param_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif _UNION_MEMBER.match(item) or (
            isinstance(previous, int) and (item in _ROLE_TAGS or item in _PART_TAGS)
        ):
            pass  # a union member's label, not a parameter name
        else:
            path += f".{item}" if path else item
        previous = item
    return path


def _to_invalid_request(errors: list[ErrorDetails]) -> InvalidRequestError:
    error = errors[0]
    param = _param_path(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, _FieldError):
        return InvalidRequestError(cause.message, param=cause.param)
    if kind == "missing":
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'")
        param = f"{param}.{tag}" if param else tag
        if kind == "union_tag_not_found":
            return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
        return InvalidRequestError(
            f"Invalid value for '{param}': {ctx.get('tag')!r}. Supported values are: "
            f"{ctx.get('expected_tags')}.",
            param=param,
        )
    if kind == "extra_forbidden":
        return InvalidRequestError(f"Unrecognized request argument supplied: {param}", param=param)
    message = error["msg"]
    if isinstance(cause, Exception):
        message = str(cause)
    where = f"'{param}'" if param else "the request body"
    return InvalidRequestError(f"Invalid value for {where}: {message}", param=param or None)
