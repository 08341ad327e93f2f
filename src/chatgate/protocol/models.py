"""``/v1/models`` wire shapes."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

__all__ = ["ModelList", "ModelObject"]


class ModelObject(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[ModelObject]
