"""``POST /v1/embeddings`` wire types: the request, parsed by hand so every problem names its
parameter the way OpenAI does, and the response shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from typing_extensions import TypedDict

from chatgate.protocol.errors import InvalidRequestError

__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "parse_embedding_request",
]

MAX_EMBEDDING_INPUTS = 2048
"""OpenAI's limit on inputs per request."""


class Embedding(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(TypedDict):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    texts: list[str] | None
    """The inputs as text, or None when they came as token arrays."""
    token_arrays: list[list[int]] | None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields chatgate does not interpret, forwarded to an upstream as sent."""

    @property
    def count(self) -> int:
        return len(self.texts if self.texts is not None else self.token_arrays or [])


_KNOWN = {"model", "input", "encoding_format", "dimensions", "user"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _parse_input(value: Any) -> tuple[list[str] | None, list[list[int]] | None]:
    if isinstance(value, str):
        if not value:
            raise _invalid("'input' cannot be an empty string.", "input")
        return [value], None
    if not isinstance(value, list) or not value:
        raise _invalid(
            "'input' must be a non-empty string, array of strings, array of tokens, or array "
            "of token arrays.",
            "input",
        )
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise _invalid(
            f"'input' has {len(value)} items; at most {MAX_EMBEDDING_INPUTS} are allowed.",
            "input",
        )
    first = value[0]
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid(f"'input[{i}]' must be a string like the other items.", "input")
            if not item:
                raise _invalid(f"'input[{i}]' cannot be an empty string.", "input")
        return list(value), None
    if _is_int(first):
        return None, [_token_array(value, "input")]
    if isinstance(first, list):
        return None, [_token_array(item, f"input[{i}]") for i, item in enumerate(value)]
    raise _invalid("'input' items must be strings, tokens or token arrays.", "input")


def _token_array(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _invalid(f"'{where}' must be a non-empty array of tokens.", "input")
    for token in value:
        if not _is_int(token) or token < 0:
            raise _invalid(f"'{where}' must contain non-negative integer tokens.", "input")
    return value


def parse_embedding_request(body: dict[str, Any]) -> EmbeddingRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    if "input" not in body:
        raise InvalidRequestError(
            "Missing required parameter: 'input'.",
            param="input",
            code="missing_required_parameter",
        )
    texts, arrays = _parse_input(body["input"])
    encoding_format: Literal["float", "base64"]
    match body.get("encoding_format"):
        case None | "float":
            encoding_format = "float"
        case "base64":
            encoding_format = "base64"
        case other:
            raise _invalid(
                f"Invalid value for 'encoding_format': {other!r}. Supported values are: "
                "'float' and 'base64'.",
                "encoding_format",
            )
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise _invalid("'dimensions' must be a positive integer.", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("'user' must be a string.", "user")
    return EmbeddingRequest(
        model=model,
        texts=texts,
        token_arrays=arrays,
        encoding_format=encoding_format,
        dimensions=dimensions,
        user=user,
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )
