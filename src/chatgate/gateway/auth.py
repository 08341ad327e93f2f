"""Who is calling: master key, virtual key or browser token — checked without a database round
trip in steady state.

Verified keys are cached by secret hash for at most ``cache_ttl`` seconds. Every replica polls the
store's ``keys`` version every ``poll_interval`` seconds and drops what changed, so a revocation
made anywhere (another replica, the CLI) is honoured within about one interval. Last-used times
are collected in memory and written in batches off the request path.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from chatgate.gateway.tokens import TokenClaims, TokenSigner, glob_allows
from chatgate.protocol import AuthenticationError, PermissionDeniedError, TooManyRequestsError
from chatgate.state import ApiKey, KeyStore, hash_secret, looks_like_key
from chatgate.state.files import FileAccess
from chatgate.state.token_uses import TokenUses
from chatgate.tasks import stop_task

__all__ = ["Authenticator", "Principal", "access_of"]

log = logging.getLogger("chatgate.auth")

_NEGATIVE_CACHE = 10_000
_POLLS_PER_TOUCH = 20
"""Last-used times are written every this many polls (5 s at the default interval)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request."""

    kind: Literal["open", "master", "key", "token"]
    key: ApiKey | None = None
    token: TokenClaims | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never a secret)."""
        if self.key is not None:
            return self.key.id
        return self.kind

    @property
    def is_admin(self) -> bool:
        return self.kind in ("open", "master")

    def may_use_model(self, model: str, aliases: Sequence[str] = ()) -> bool:
        """May this caller use ``model`` (the model that runs, by its own name; ``aliases``: the
        other ids it answers to)?"""
        if self.key is not None and not glob_allows(self.key.allowed_models, model, aliases):
            return False
        return self.token is None or glob_allows(self.token.models, model, aliases)

    def check_endpoint(self, endpoint: str) -> None:
        if self.token is not None and endpoint not in ("chat.completions", "models", "feedback"):
            raise PermissionDeniedError(f"Browser tokens may not call `{endpoint}`.")
        scopes = self.key.allowed_endpoints if self.key is not None else ()
        if scopes and endpoint not in scopes:
            raise PermissionDeniedError(f"This key may not call `{endpoint}`.")


@dataclass(slots=True)
class _Cached:
    key: ApiKey
    secret_expires_at: float | None
    fetched_at: float


class Authenticator:
    def __init__(
        self,
        keys: KeyStore,
        token_uses: TokenUses,
        signer: TokenSigner,
        *,
        master_key: str | None,
        cache_ttl: float,
        poll_interval: float,
    ):
        self._keys = keys
        self._token_uses = token_uses
        self._signer = signer
        self._master = master_key.encode() if master_key else None
        self._ttl = cache_ttl
        self._interval = poll_interval
        self._cache: dict[str, _Cached] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._used: dict[str, float] = {}
        self._version = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self._master is None

    @property
    def signer(self) -> TokenSigner:
        return self._signer

    async def start(self) -> None:
        self._version = await self._keys.version()
        self._task = asyncio.create_task(self._watch(), name="chatgate-key-watch")

    async def close(self) -> None:
        await stop_task(self._task)
        await self._flush_used()

    async def authenticate(self, authorization: str | None, origin: str | None) -> Principal:
        credential = _bearer(authorization)
        if credential is None:
            if self.open:
                return Principal("open")
            raise AuthenticationError(
                "You didn't provide an API key. Send it as `Authorization: Bearer <key>`."
            )
        if self._master is not None and hmac.compare_digest(credential.encode(), self._master):
            return Principal("master")
        if looks_like_key(credential):
            key = await self._key(hash_secret(credential))
            return Principal("key", key=key)
        if credential.count(".") == 2:
            return await self._token(credential, origin)
        if self.open:
            return Principal("open")  # e.g. the SDK's placeholder key on a loopback-only server
        raise AuthenticationError("Incorrect API key provided.")

    async def _key(self, secret_hash: str) -> ApiKey:
        now = time.time()
        cached = self._cache.get(secret_hash)
        if cached is None or now - cached.fetched_at > self._ttl:
            if secret_hash in self._unknown and now - self._unknown[secret_hash] < self._ttl:
                raise AuthenticationError("Incorrect API key provided.")
            found = await self._keys.find(secret_hash)
            if found is None:
                self._remember_unknown(secret_hash, now)
                raise AuthenticationError("Incorrect API key provided.")
            cached = _Cached(found[0], found[1], now)
            self._cache[secret_hash] = cached
        key = cached.key
        if key.revoked_at is not None:
            raise AuthenticationError("This API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthenticationError("This API key has expired.")
        if cached.secret_expires_at is not None and cached.secret_expires_at <= now:
            raise AuthenticationError("This API key was rotated; use its new secret.")
        self._used[key.id] = now
        return key

    async def key_by_id(self, key_id: str) -> ApiKey | None:
        for cached in self._cache.values():
            if cached.key.id == key_id and time.time() - cached.fetched_at <= self._ttl:
                return cached.key
        return await self._keys.get(key_id)

    async def _token(self, token: str, origin: str | None) -> Principal:
        claims = self._signer.verify(token)
        key = await self.key_by_id(claims.key_id)
        if key is None or not key.active(time.time()):
            raise AuthenticationError("The key that issued this token is no longer valid.")
        if claims.origin is not None and origin != claims.origin:
            raise PermissionDeniedError("This token may not be used from this origin.")
        if claims.max_requests is not None and not await self._token_uses.consume(
            claims.jti, claims.max_requests, claims.expires_at
        ):
            raise TooManyRequestsError(
                "This token has made all the requests it may.", code="token_request_limit"
            )
        return Principal("token", key=key, token=claims)

    def _remember_unknown(self, secret_hash: str, now: float) -> None:
        self._unknown[secret_hash] = now
        self._unknown.move_to_end(secret_hash)
        while len(self._unknown) > _NEGATIVE_CACHE:
            self._unknown.popitem(last=False)

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget cached keys (one, or all); called on local changes and on remote ones."""
        if key_id is None:
            self._cache.clear()
        else:
            for secret_hash in [h for h, c in self._cache.items() if c.key.id == key_id]:
                del self._cache[secret_hash]
        self._unknown.clear()  # a new secret may now exist

    async def _watch(self) -> None:
        last_touch = time.monotonic()
        while True:
            await asyncio.sleep(self._interval)
            try:
                version = await self._keys.version()
                if version != self._version:
                    for key_id in await self._keys.changed_since(self._version):
                        self.invalidate(key_id)
                    self._unknown.clear()
                    self._version = version
                if time.monotonic() - last_touch >= self._interval * _POLLS_PER_TOUCH:
                    last_touch = time.monotonic()
                    await self._flush_used()
            except Exception:
                log.exception(
                    "checking for key changes failed; cached keys expire in %ss", self._ttl
                )

    async def _flush_used(self) -> None:
        used, self._used = self._used, {}
        if used:
            try:
                await self._keys.touch(used.items())
            except Exception:
                log.exception("could not record last-used times for %d keys", len(used))


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise AuthenticationError(
            "Malformed Authorization header; expected `Authorization: Bearer <key>`."
        )
    return credential


def access_of(principal: Principal) -> FileAccess:
    """What stored data (files, batches, vector stores) a caller may see: its key's and its
    owner's; the master key sees everything."""
    key = principal.key
    if key is None:
        return FileAccess(None, None, admin=principal.is_admin)
    return FileAccess(key.id, key.owner)
