"""``POST /tokenize`` wire types, in vLLM's shape: a plain ``prompt`` or chat ``messages`` in,
``{"count", "max_model_len", "tokens"}`` out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

__all__ = ["TokenizePromptRequest", "TokenizeResponse"]


class TokenizePromptRequest(BaseModel):
    """vLLM's completion-style body: the text is tokenized as given."""

    model_config = ConfigDict(extra="allow")

    model: str
    prompt: str
    add_special_tokens: bool = True
    """Add the model's beginning-of-sequence token, where it has one (vLLM's default)."""


class TokenizeResponse(TypedDict):
    object: str
    model: str
    count: int
    max_model_len: int | None
    tokens: list[int] | None
    """The token ids, where the model's ids are known (``count`` is always exact)."""
