"""Response caching: canonical keys, two store backends, and stream assembly and replay."""

from chatgate.cache.keys import OUTPUT_FIELDS, cache_key, deterministic
from chatgate.cache.replay import as_hit, assemble, replay
from chatgate.cache.store import CacheUnavailable, MemoryCache, RedisCache, ResponseCache

__all__ = [
    "OUTPUT_FIELDS",
    "CacheUnavailable",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "as_hit",
    "assemble",
    "cache_key",
    "deterministic",
    "replay",
]
