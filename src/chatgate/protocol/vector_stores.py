"""``/v1/vector_stores`` wire types: requests validated with pydantic (unknown fields refused, as
OpenAI's schema does), responses as ``TypedDict``s in OpenAI's shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from typing_extensions import TypedDict

__all__ = [
    "Attributes",
    "ComparisonFilter",
    "CompoundFilter",
    "ExpiresAfter",
    "FileBatchEntry",
    "FileCounts",
    "RankingOptions",
    "VectorStoreCreateRequest",
    "VectorStoreFileAttributesRequest",
    "VectorStoreFileBatchRequest",
    "VectorStoreFileRequest",
    "VectorStoreSearchRequest",
    "VectorStoreUpdateRequest",
]

_Key = Annotated[str, Field(min_length=1, max_length=64)]
AttributeValue = Annotated[str, Field(max_length=512)] | StrictBool | StrictInt | StrictFloat
Attributes = Annotated[dict[_Key, AttributeValue], Field(max_length=16)]
Metadata = Annotated[dict[_Key, Annotated[str, Field(max_length=512)]], Field(max_length=16)]
FileId = Annotated[str, Field(min_length=1, max_length=64)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpiresAfter(_Request):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class VectorStoreCreateRequest(_Request):
    file_ids: Annotated[list[FileId], Field(max_length=500)] = []
    name: Annotated[str, Field(max_length=512)] | None = None
    description: Annotated[str, Field(max_length=512)] | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: dict[str, Any] | None = None
    metadata: Metadata | None = None


class VectorStoreUpdateRequest(_Request):
    name: Annotated[str, Field(max_length=512)] | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class VectorStoreFileRequest(_Request):
    file_id: FileId
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class FileBatchEntry(_Request):
    file_id: FileId
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class VectorStoreFileBatchRequest(_Request):
    file_ids: Annotated[list[FileId], Field(min_length=1, max_length=2000)] | None = None
    files: Annotated[list[FileBatchEntry], Field(min_length=1, max_length=2000)] | None = None
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class VectorStoreFileAttributesRequest(_Request):
    attributes: Attributes | None


class ComparisonFilter(_Request):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: StrictBool | StrictInt | StrictFloat | str | list[StrictInt | StrictFloat | str]


class CompoundFilter(_Request):
    type: Literal["and", "or"]
    filters: Annotated[list[ComparisonFilter | CompoundFilter], Field(min_length=1)]


class RankingOptions(_Request):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class VectorStoreSearchRequest(_Request):
    query: str | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    rewrite_query: bool = False
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: RankingOptions | None = None
    search_mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    """chatgate's extension: dense + keyword fused by reciprocal rank (default), or one alone."""


class FileCounts(TypedDict):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int
