"""Wire types of chatgate's own endpoints: the admin key API and browser tokens."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

__all__ = [
    "ENDPOINTS",
    "PRIORITIES",
    "ApiKeyObject",
    "AuditEntryObject",
    "Budget",
    "KeyCreateRequest",
    "KeyLimits",
    "KeyRotateRequest",
    "KeyUpdateRequest",
    "Priority",
    "TokenObject",
    "TokenRequest",
]

ENDPOINTS = (
    "batches",
    "chat.completions",
    "embeddings",
    "feedback",
    "files",
    "models",
    "moderations",
    "tokens",
    "tokenize",
    "vector_stores",
)
"""Endpoint scopes a key may be limited to (empty list: all of them)."""

_Name = Annotated[str, Field(min_length=1, max_length=200)]
_Glob = Annotated[str, Field(min_length=1, max_length=200)]


class _Admin(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _check_endpoints(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(ENDPOINTS))
    if unknown:
        raise ValueError(f"unknown endpoints {unknown}; choose from {list(ENDPOINTS)}")
    return value


Priority = Literal["critical", "normal", "low"]
PRIORITIES: dict[str, int] = {"critical": 0, "normal": 1, "low": 2}


class KeyLimits(_Admin):
    rpm: Annotated[int, Field(ge=1)] | None = None
    """Requests per minute."""
    tpm: Annotated[int, Field(ge=1)] | None = None
    """Tokens per minute."""
    concurrent: Annotated[int, Field(ge=1)] | None = None
    """Requests in flight at once."""


class Budget(_Admin):
    daily: Annotated[float, Field(gt=0)] | None = None
    """Spend cap per UTC day, in the configured currency."""
    monthly: Annotated[float, Field(gt=0)] | None = None
    """Spend cap per UTC calendar month."""
    total: Annotated[float, Field(gt=0)] | None = None
    """Spend cap over the key's life."""


class KeyCreateRequest(_Admin):
    """``POST /admin/keys``."""

    name: _Name
    owner: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    allowed_models: Annotated[list[_Glob], Field(max_length=100)] = []
    """Model ids or globs (`gpt-4o*`); empty: every model."""
    allowed_endpoints: list[str] = []
    """Subset of `chat.completions`, `models`, `tokens`, `tokenize`; empty: all."""
    expires_at: Annotated[float, Field(gt=0)] | None = None
    """Unix time after which the key stops working."""
    expires_in: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] | None = None
    """Seconds from now (instead of `expires_at`)."""
    metadata: dict[str, Any] = {}
    limits: KeyLimits | None = None
    """The key's own rate limits (default: `limits.key_default` in config)."""
    priority: Priority | None = None
    """The highest priority its requests may ask for with `x-chatgate-priority` (default
    normal)."""
    queue_timeout: Annotated[float, Field(ge=0, le=600)] | None = None
    """Seconds its requests may wait for capacity before a 429 (default: config)."""
    budget: Budget | None = None
    """Spend caps (default: `budgets.key_default` in config)."""

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str]) -> list[str]:
        return _check_endpoints(value)

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


class KeyUpdateRequest(_Admin):
    """``PATCH /admin/keys/{id}``: only the fields given change (null clears an optional one)."""

    name: _Name | None = None
    owner: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    allowed_models: Annotated[list[_Glob], Field(max_length=100)] | None = None
    allowed_endpoints: list[str] | None = None
    expires_at: Annotated[float, Field(gt=0)] | None = None
    metadata: dict[str, Any] | None = None
    limits: KeyLimits | None = None
    priority: Priority | None = None
    queue_timeout: Annotated[float, Field(ge=0, le=600)] | None = None
    budget: Budget | None = None

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_endpoints(value)

    def changes(self) -> dict[str, Any]:
        """The fields the caller sent, ready for the store."""
        out = self.model_dump(include=self.model_fields_set)
        if "name" in out and out["name"] is None:
            raise ValueError("`name` cannot be null")
        for listed in ("allowed_models", "allowed_endpoints"):
            if listed in out and out[listed] is None:
                out[listed] = []
        if "metadata" in out and out["metadata"] is None:
            out["metadata"] = {}
        for capped in ("limits", "budget"):
            if out.get(capped) is not None:
                out[capped] = {k: v for k, v in out[capped].items() if v is not None}
        return out


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
    limits: dict[str, int] | None
    priority: str | None
    queue_timeout: float | None
    budget: dict[str, float] | None
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
