"""The in-process limiter (embedded default): exact sliding windows, one process."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from chatgate.limits.base import WINDOW, Decision, ScopeLimit, ScopeState

__all__ = ["MemoryLimiter"]


@dataclass(slots=True)
class _Scope:
    requests: deque[tuple[float, str]] = field(default_factory=deque)
    tokens: deque[tuple[float, str]] = field(default_factory=deque)
    token_of: dict[str, int] = field(default_factory=dict)
    token_total: int = 0
    leases: dict[str, float] = field(default_factory=dict)

    def prune(self, now: float) -> None:
        horizon = now - WINDOW
        while self.requests and self.requests[0][0] <= horizon:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= horizon:
            _, rid = self.tokens.popleft()
            self.token_total -= self.token_of.pop(rid, 0)
        for rid in [r for r, until in self.leases.items() if until <= now]:
            del self.leases[rid]

    def tokens_free_at(self, needed: int, limit: int) -> float:
        """When enough reserved tokens leave the window for ``needed`` more to fit."""
        excess = self.token_total + needed - limit
        for at, rid in self.tokens:
            excess -= self.token_of.get(rid, 0)
            if excess <= 0:
                return at + WINDOW
        return self.tokens[-1][0] + WINDOW if self.tokens else 0.0


class MemoryLimiter:
    def __init__(self) -> None:
        self._scopes: dict[str, _Scope] = {}

    def _scope(self, name: str, now: float) -> _Scope:
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = _Scope()
        scope.prune(now)
        return scope

    async def acquire(
        self, request_id: str, limits: list[ScopeLimit], tokens: int, lease_seconds: float
    ) -> Decision:
        now = time.time()
        scopes = [(limit, self._scope(limit.scope, now)) for limit in limits]
        for limit, scope in scopes:
            refusal = _refusal(limit, scope, tokens, now)
            if refusal is not None:
                dimension, retry_after, never = refusal
                return Decision(
                    False,
                    retry_after,
                    f"{limit.scope}:{dimension}",
                    tuple(_state(lm, sc, now) for lm, sc in scopes),
                    never,
                )
        for limit, scope in scopes:
            if limit.rpm is not None:
                scope.requests.append((now, request_id))
            if limit.tpm is not None:
                scope.tokens.append((now, request_id))
                scope.token_of[request_id] = tokens
                scope.token_total += tokens
            if limit.concurrent is not None:
                scope.leases[request_id] = now + lease_seconds
        return Decision(True, 0.0, None, tuple(_state(lm, sc, now) for lm, sc in scopes))

    async def finish(self, request_id: str, limits: list[ScopeLimit], tokens: int) -> None:
        for limit in limits:
            scope = self._scopes.get(limit.scope)
            if scope is None:
                continue
            if request_id in scope.token_of:
                scope.token_total += tokens - scope.token_of[request_id]
                scope.token_of[request_id] = tokens
            scope.leases.pop(request_id, None)

    async def close(self) -> None:
        self._scopes.clear()


def _refusal(
    limit: ScopeLimit, scope: _Scope, tokens: int, now: float
) -> tuple[str, float, bool] | None:
    if limit.rpm is not None and len(scope.requests) + 1 > limit.rpm:
        return "rpm", scope.requests[0][0] + WINDOW - now, False
    if limit.tpm is not None:
        if tokens > limit.tpm:
            return "tpm", 0.0, True
        if scope.token_total + tokens > limit.tpm:
            return "tpm", max(0.0, scope.tokens_free_at(tokens, limit.tpm) - now), False
    if limit.concurrent is not None and len(scope.leases) + 1 > limit.concurrent:
        return "concurrent", max(0.05, min(scope.leases.values()) - now), False
    return None


def _state(limit: ScopeLimit, scope: _Scope, now: float) -> ScopeState:
    return ScopeState(
        scope=limit.scope,
        rpm=limit.rpm,
        remaining_requests=None if limit.rpm is None else max(0, limit.rpm - len(scope.requests)),
        reset_requests=max(0.0, scope.requests[-1][0] + WINDOW - now) if scope.requests else 0.0,
        tpm=limit.tpm,
        remaining_tokens=None if limit.tpm is None else max(0, limit.tpm - scope.token_total),
        reset_tokens=max(0.0, scope.tokens[-1][0] + WINDOW - now) if scope.tokens else 0.0,
    )
