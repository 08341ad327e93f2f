"""Rate limits behind one interface: in-process memory (default) or Redis (shared)."""

from chatgate.limits.base import (
    WINDOW,
    Decision,
    Limiter,
    LimiterUnavailable,
    ScopeLimit,
    ScopeState,
)
from chatgate.limits.headers import rate_limit_headers
from chatgate.limits.memory import MemoryLimiter
from chatgate.limits.redis import RedisLimiter

__all__ = [
    "WINDOW",
    "Decision",
    "Limiter",
    "LimiterUnavailable",
    "MemoryLimiter",
    "RedisLimiter",
    "ScopeLimit",
    "ScopeState",
    "rate_limit_headers",
]
