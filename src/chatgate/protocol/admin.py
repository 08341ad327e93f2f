"""Wire types of chatgate's own endpoints: the admin key API and browser tokens."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

__all__ = [
    "ENDPOINTS",
    "ApiKeyObject",
    "AuditEntryObject",
    "KeyCreateRequest",
    "KeyRotateRequest",
    "TokenObject",
    "TokenRequest",
]

ENDPOINTS = ("chat.completions", "models", "tokens")
"""Endpoint scopes a key may be limited to (empty list: all of them)."""

_Name = Annotated[str, Field(min_length=1, max_length=200)]
_Glob = Annotated[str, Field(min_length=1, max_length=200)]


class _Admin(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class KeyCreateRequest(_Admin):
    """``POST /admin/keys``."""

    name: _Name
    owner: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    allowed_models: Annotated[list[_Glob], Field(max_length=100)] = []
    """Model ids or globs (`gpt-4o*`); empty: every model."""
    allowed_endpoints: list[str] = []
    """Subset of `chat.completions`, `models`, `tokens`; empty: all."""
    expires_at: Annotated[float, Field(gt=0)] | None = None
    """Unix time after which the key stops working."""
    expires_in: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] | None = None
    """Seconds from now (instead of `expires_at`)."""
    metadata: dict[str, Any] = {}

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"unknown endpoints {unknown}; choose from {list(ENDPOINTS)}")
        return value

    @model_validator(mode="after")
    def _expiry(self) -> KeyCreateRequest:
        if self.expires_at is not None and self.expires_in is not None:
            raise ValueError("set `expires_at` or `expires_in`, not both")
        if self.expires_at is not None and self.expires_at <= time.time():
            raise ValueError("`expires_at` is in the past")
        return self

    def expiry(self) -> float | None:
        if self.expires_in is not None:
            return time.time() + self.expires_in
        return self.expires_at


class KeyRotateRequest(_Admin):
    """``POST /admin/keys/{id}/rotate``."""

    grace_period: Annotated[float, Field(ge=0, le=30 * 86400)] = 0
    """Seconds the old secret keeps working (0: it stops at once)."""


class TokenRequest(_Admin):
    """``POST /v1/tokens``: a short-lived, narrow token for browser code."""

    models: Annotated[list[_Glob], Field(max_length=100)] | None = None
    """Models the token may use (within its key's); default: the key's."""
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    """Cap on `max_tokens` per request made with the token."""
    origin: Annotated[str, Field(pattern=r"^https?://[^/\s]+$", max_length=300)] | None = None
    """The only browser `Origin` allowed to use the token."""
    max_requests: Annotated[int, Field(ge=1)] | None = None
    """Requests the token may make in its lifetime."""
    ttl: Annotated[int, Field(ge=1)] | None = None
    """Lifetime in seconds (default and maximum set by the server)."""


class ApiKeyObject(TypedDict):
    """A key as the admin API shows it; ``secret`` only in the answers to create and rotate."""

    id: str
    object: Literal["api_key"]
    name: str
    owner: str | None
    allowed_models: list[str]
    allowed_endpoints: list[str]
    expires_at: float | None
    metadata: dict[str, Any]
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None
    secret: NotRequired[str]


class TokenObject(TypedDict):
    object: Literal["chatgate.token"]
    token: str
    key_id: str
    expires_at: float
    models: list[str]
    max_tokens: int | None
    origin: str | None
    max_requests: int | None


class AuditEntryObject(TypedDict):
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
