"""Rate limits: sliding 60-second windows of requests and tokens, plus concurrency leases.

A request is checked against every scope that applies to it (global, model, owner, key) in one
atomic decision: it is admitted into all of them or none. Tokens are reserved up front (prompt +
the completion cap) and settled to actual usage when the response ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["WINDOW", "Decision", "Limiter", "LimiterUnavailable", "ScopeLimit", "ScopeState"]

WINDOW = 60.0
"""Seconds of the sliding window behind requests/minute and tokens/minute."""


class LimiterUnavailable(Exception):
    """The shared limiter backend could not be reached."""


@dataclass(frozen=True, slots=True)
class ScopeLimit:
    """One scope's limits, e.g. ``key:key_ab12`` with 100 requests and 40k tokens a minute."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.concurrent is None


@dataclass(frozen=True, slots=True)
class ScopeState:
    """What a scope looks like after a decision (for the ``x-ratelimit-*`` headers)."""

    scope: str
    rpm: int | None
    remaining_requests: int | None
    reset_requests: float
    tpm: int | None
    remaining_tokens: int | None
    reset_tokens: float


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    retry_after: float
    """Seconds until the refusing limit could admit this request (0 when admitted)."""
    refused_by: str | None
    """``scope:dimension`` that refused, e.g. ``key:key_ab12:rpm``."""
    states: tuple[ScopeState, ...]
    never: bool = False
    """The request alone exceeds a limit (e.g. more tokens than the tokens/minute cap)."""


class Limiter(Protocol):
    async def acquire(
        self, request_id: str, limits: list[ScopeLimit], tokens: int, lease_seconds: float
    ) -> Decision:
        """Admit the request into every scope, or into none."""
        ...

    async def finish(self, request_id: str, limits: list[ScopeLimit], tokens: int) -> None:
        """The request ended: settle its token reservation to what it actually used, and free
        its concurrency lease."""
        ...

    async def close(self) -> None: ...
