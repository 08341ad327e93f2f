"""OpenAI's ``x-ratelimit-*`` response headers from a limiter decision."""

from __future__ import annotations

import math

from chatgate.limits.base import Decision, ScopeState

__all__ = ["duration", "rate_limit_headers"]


def duration(seconds: float) -> str:
    """OpenAI's duration format: ``1s``, ``6m0s``, ``1h2m3s``, ``250ms``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _tightest(states: tuple[ScopeState, ...], dimension: str) -> ScopeState | None:
    if dimension == "requests":
        limited = [s for s in states if s.rpm is not None]
        return min(limited, key=lambda s: s.remaining_requests or 0, default=None)
    limited = [s for s in states if s.tpm is not None]
    return min(limited, key=lambda s: s.remaining_tokens or 0, default=None)


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """Headers for the most constrained scope in each dimension (none if nothing is limited)."""
    headers: dict[str, str] = {}
    requests = _tightest(decision.states, "requests")
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests.rpm)
        headers["x-ratelimit-remaining-requests"] = str(requests.remaining_requests)
        headers["x-ratelimit-reset-requests"] = duration(requests.reset_requests)
    tokens = _tightest(decision.states, "tokens")
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(tokens.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = duration(tokens.reset_tokens)
    if not decision.admitted:
        headers["retry-after"] = str(max(1, math.ceil(decision.retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(decision.retry_after * 1000)))
    return headers
