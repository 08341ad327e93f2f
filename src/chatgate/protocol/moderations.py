"""``POST /v1/moderations`` wire types, in OpenAI's shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

__all__ = ["ModerationRequest", "ModerationResponse", "ModerationResult"]


class _TextInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class _ImageInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: dict[str, Any]


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    input: (
        str
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[
            list[Annotated[_TextInput | _ImageInput, Field(discriminator="type")]],
            Field(min_length=1, max_length=2048),
        ]
    )
    model: str | None = None


class ModerationResult(TypedDict):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(TypedDict):
    id: str
    model: str
    results: list[ModerationResult]
