"""Ephemeral browser tokens: short-lived, narrow JWTs (HS256) minted from a real key."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import jwt

from chatgate.protocol import AuthenticationError, PermissionDeniedError
from chatgate.protocol.admin import TokenRequest
from chatgate.state import ApiKey

__all__ = ["TokenClaims", "TokenSigner", "glob_allows"]

_ISSUER = "chatgate"
_AUDIENCE = "chatgate-browser"


def glob_allows(
    patterns: tuple[str, ...] | list[str], model: str, aliases: Sequence[str] = ()
) -> bool:
    """Empty means everything; otherwise ``model`` — the model that runs, by its own name — must
    match one glob (``*`` and ``?``), or one pattern must be exactly one of its ``aliases`` (an
    allow-list may name a model by an alias; a glob never reaches another model through one)."""
    if not patterns:
        return True
    return any(fnmatchcase(model, p) or p in aliases for p in patterns)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    jti: str
    key_id: str
    expires_at: float
    models: tuple[str, ...]
    max_tokens: int | None
    origin: str | None
    max_requests: int | None

    def public(self, token: str) -> dict[str, Any]:
        return {
            "object": "chatgate.token",
            "token": token,
            "key_id": self.key_id,
            "expires_at": self.expires_at,
            "models": list(self.models),
            "max_tokens": self.max_tokens,
            "origin": self.origin,
            "max_requests": self.max_requests,
        }


class TokenSigner:
    def __init__(self, secret: bytes, *, default_ttl: int, max_ttl: int):
        self._secret = secret
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl

    def mint(self, key: ApiKey, request: TokenRequest) -> tuple[str, TokenClaims]:
        ttl = request.ttl or self._default_ttl
        if ttl > self._max_ttl:
            raise PermissionDeniedError(
                f"`ttl` may be at most {self._max_ttl} seconds.", param="ttl"
            )
        models = tuple(request.models) if request.models is not None else key.allowed_models
        for model in models:
            if key.allowed_models and not glob_allows(key.allowed_models, model):
                raise PermissionDeniedError(
                    f"The key may not use `{model}`, so its token may not either.", param="models"
                )
        expires_at = int(time.time()) + ttl
        if key.expires_at is not None:
            expires_at = min(expires_at, int(key.expires_at))
        claims = TokenClaims(
            jti=secrets.token_hex(12),
            key_id=key.id,
            expires_at=float(expires_at),
            models=models,
            max_tokens=request.max_tokens,
            origin=request.origin,
            max_requests=request.max_requests,
        )
        payload = {
            "iss": _ISSUER,
            "aud": _AUDIENCE,
            "sub": key.id,
            "jti": claims.jti,
            "iat": int(time.time()),
            "exp": expires_at,
            "models": list(models),
            "max_tokens": request.max_tokens,
            "origin": request.origin,
            "max_requests": request.max_requests,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256"), claims

    def verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=_AUDIENCE,
                issuer=_ISSUER,
                options={"require": ["exp", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            # A code of its own: a browser widget tells "sign in again" from a bad credential.
            raise AuthenticationError("The token has expired.", code="token_expired") from None
        except jwt.PyJWTError:
            raise AuthenticationError("The token is not valid.") from None
        return TokenClaims(
            jti=str(payload["jti"]),
            key_id=str(payload["sub"]),
            expires_at=float(payload["exp"]),
            models=tuple(payload.get("models") or ()),
            max_tokens=payload.get("max_tokens"),
            origin=payload.get("origin"),
            max_requests=payload.get("max_requests"),
        )
