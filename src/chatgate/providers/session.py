"""The one way chatgate opens a pooled HTTP client to an upstream (chat models, embedding models,
an upstream moderation engine): one ``aiohttp`` session per upstream, made the same way for all."""

from __future__ import annotations

import aiohttp

__all__ = ["upstream_session"]


def upstream_session(
    *,
    max_connections: int,
    connect_timeout: float | None,
    read_timeout: float | None,
    total_timeout: float | None = None,
) -> aiohttp.ClientSession:
    """A pooled session: at most ``max_connections`` connections, idle ones kept a minute, DNS
    answers cached five; no cookie jar — the session is shared by every caller, so a cookie one
    upstream answer sets (load balancers set them) must not ride along on other tenants'
    requests, and skipping cookie handling is cheaper per request; no proxy settings read from
    the environment (config says where upstreams are)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections, ttl_dns_cache=300, keepalive_timeout=60
        ),
        timeout=aiohttp.ClientTimeout(
            total=total_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        ),
        auto_decompress=True,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
