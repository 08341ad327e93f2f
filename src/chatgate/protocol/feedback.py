"""``POST /v1/feedback``: a score or label for an answer, by its request id."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["FeedbackRequest"]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    """The answer's id: its response's ``x-request-id`` header (the gateway's id; one you sent
    is only echoed as ``x-client-request-id``)."""
    score: float | None = None
    """A number on your own scale (e.g. 0..1, or 1..5); experiments report its mean."""
    label: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """A category such as ``good`` / ``bad``; experiments report the share of one label."""
    comment: Annotated[str, Field(max_length=2000)] | None = None

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("`score` must be a finite number")
        return value

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.score is None and self.label is None:
            raise ValueError("give `score`, `label`, or both")
        return self
