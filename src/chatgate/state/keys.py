"""Virtual keys: creation, rotation with a grace period, revocation, and lookup by secret hash.

A secret is ``cg-`` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: with 256
bits of randomness a plain hash cannot be brute-forced, and every replica can check it without
sharing a pepper. Every change bumps the ``keys`` state version so replicas can invalidate their
caches by polling one row.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.protocol.admin import KeyCreateRequest
from chatgate.state.audit import record_audit
from chatgate.state.db import Database
from chatgate.state.tables import ApiKeyRow, ApiKeySecretRow, StateVersionRow

__all__ = ["ApiKey", "KeySpec", "KeyStore", "hash_secret", "looks_like_key", "new_secret"]

SECRET_PREFIX = "cg-"
_SECRET_LENGTH = len(SECRET_PREFIX) + 43  # 32 bytes of URL-safe base64, unpadded


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def looks_like_key(value: str) -> bool:
    return value.startswith(SECRET_PREFIX) and len(value) == _SECRET_LENGTH


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a caller asks for when creating a key (validated by the caller's wire type)."""

    name: str
    owner: str | None = None
    allowed_models: list[str] = field(default_factory=list)
    allowed_endpoints: list[str] = field(default_factory=list)
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] | None = None
    """``rpm``, ``tpm``, ``concurrent`` for this key (None: the configured default)."""
    priority: str | None = None
    """The highest priority the key may ask for (None: normal)."""
    queue_timeout: float | None = None
    """Seconds its requests may wait for capacity (None: the configured default)."""
    budget: dict[str, float] | None = None
    """``daily``, ``monthly``, ``total`` spend caps in the configured currency."""

    @classmethod
    def from_request(cls, request: KeyCreateRequest) -> KeySpec:
        """The spec of a validated ``POST /admin/keys`` (or ``chatgate keys create``)."""
        return cls(
            name=request.name,
            owner=request.owner,
            allowed_models=request.allowed_models,
            allowed_endpoints=request.allowed_endpoints,
            expires_at=request.expiry(),
            metadata=request.metadata,
            limits=request.limits.model_dump(exclude_none=True) if request.limits else None,
            priority=request.priority,
            queue_timeout=request.queue_timeout,
            budget=request.budget.model_dump(exclude_none=True) if request.budget else None,
        )


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the rest of chatgate sees it (never its secret)."""

    id: str
    name: str
    owner: str | None
    allowed_models: tuple[str, ...]
    allowed_endpoints: tuple[str, ...]
    expires_at: float | None
    metadata: dict[str, Any]
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None
    limits: dict[str, int] | None = None
    priority: str | None = None
    queue_timeout: float | None = None
    budget: dict[str, float] | None = None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            id=row.id,
            name=row.name,
            owner=row.owner,
            allowed_models=tuple(row.allowed_models),
            allowed_endpoints=tuple(row.allowed_endpoints),
            expires_at=row.expires_at,
            metadata=dict(row.key_metadata),
            created_at=row.created_at,
            created_by=row.created_by,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            limits=dict(row.limits) if row.limits else None,
            priority=row.priority,
            queue_timeout=row.queue_timeout,
            budget=dict(row.budget) if row.budget else None,
        )

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "api_key",
            "name": self.name,
            "owner": self.owner,
            "allowed_models": list(self.allowed_models),
            "allowed_endpoints": list(self.allowed_endpoints),
            "expires_at": self.expires_at,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "limits": self.limits,
            "priority": self.priority,
            "queue_timeout": self.queue_timeout,
            "budget": self.budget,
        }


async def _bump(session: AsyncSession) -> int:
    result = await session.execute(
        update(StateVersionRow)
        .where(StateVersionRow.name == "keys")
        .values(version=StateVersionRow.version + 1)
        .returning(StateVersionRow.version)
    )
    return int(result.scalar_one())


class KeyStore:
    def __init__(self, db: Database):
        self._db = db

    async def create(self, spec: KeySpec, *, actor: str) -> tuple[ApiKey, str]:
        """Create a key; returns it and its secret (shown once, never stored)."""
        secret = new_secret()
        now = time.time()
        async with self._db.session() as session:
            row = ApiKeyRow(
                id=f"key_{secrets.token_hex(6)}",
                name=spec.name,
                owner=spec.owner,
                allowed_models=list(spec.allowed_models),
                allowed_endpoints=list(spec.allowed_endpoints),
                expires_at=spec.expires_at,
                key_metadata=dict(spec.metadata),
                created_at=now,
                created_by=actor,
                last_used_at=None,
                revoked_at=None,
                limits=spec.limits,
                priority=spec.priority,
                queue_timeout=spec.queue_timeout,
                budget=spec.budget,
                version=await _bump(session),
            )
            session.add(row)
            await session.flush()
            session.add(
                ApiKeySecretRow(
                    hash=hash_secret(secret), key_id=row.id, created_at=now, expires_at=None
                )
            )
            await record_audit(session, actor, "key.create", row.id, {"name": spec.name})
            return ApiKey.from_row(row), secret

    async def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        async with self._db.session() as session:
            query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
            if not include_revoked:
                query = query.where(ApiKeyRow.revoked_at.is_(None))
            return [ApiKey.from_row(row) for row in (await session.scalars(query)).all()]

    async def get(self, key_id: str) -> ApiKey | None:
        async with self._db.session() as session:
            row = await session.get(ApiKeyRow, key_id)
            return None if row is None else ApiKey.from_row(row)

    async def revoke(self, key_id: str, *, actor: str) -> ApiKey | None:
        async with self._db.session() as session:
            row = await session.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = time.time()
                row.version = await _bump(session)
                await session.execute(
                    delete(ApiKeySecretRow).where(ApiKeySecretRow.key_id == key_id)
                )
                await record_audit(session, actor, "key.revoke", key_id, {})
            return ApiKey.from_row(row)

    async def rotate(
        self, key_id: str, *, grace_seconds: float, actor: str
    ) -> tuple[ApiKey, str] | None:
        """Issue a new secret; the old ones stay valid for ``grace_seconds`` (0: at once)."""
        now = time.time()
        secret = new_secret()
        async with self._db.session() as session:
            row = await session.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None or not ApiKey.from_row(row).active(now):
                return None
            old_until = now + grace_seconds
            current = await session.scalars(
                select(ApiKeySecretRow).where(ApiKeySecretRow.key_id == key_id)
            )
            for old in current.all():
                if grace_seconds <= 0:
                    await session.delete(old)
                elif old.expires_at is None or old.expires_at > old_until:
                    old.expires_at = old_until
            session.add(
                ApiKeySecretRow(
                    hash=hash_secret(secret), key_id=key_id, created_at=now, expires_at=None
                )
            )
            row.version = await _bump(session)
            await record_audit(
                session, actor, "key.rotate", key_id, {"grace_seconds": grace_seconds}
            )
            return ApiKey.from_row(row), secret

    async def update(self, key_id: str, changes: dict[str, Any], *, actor: str) -> ApiKey | None:
        """Change a key's settable fields (name, owner, scopes, expiry, metadata, limits...)."""
        columns = {"metadata": "key_metadata"}
        async with self._db.session() as session:
            row = await session.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, columns.get(name, name), value)
            row.version = await _bump(session)
            await record_audit(session, actor, "key.update", key_id, {"fields": sorted(changes)})
            return ApiKey.from_row(row)

    async def find(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        """The key a secret hash belongs to, and when that secret stops working (if it does)."""
        async with self._db.session() as session:
            query = (
                select(ApiKeyRow, ApiKeySecretRow.expires_at)
                .join(ApiKeySecretRow, ApiKeySecretRow.key_id == ApiKeyRow.id)
                .where(ApiKeySecretRow.hash == secret_hash)
            )
            found = (await session.execute(query)).first()
            if found is None:
                return None
            return ApiKey.from_row(found[0]), found[1]

    async def version(self) -> int:
        async with self._db.session() as session:
            row = await session.get(StateVersionRow, "keys")
            return 0 if row is None else row.version

    async def changed_since(self, version: int) -> list[str]:
        async with self._db.session() as session:
            query = select(ApiKeyRow.id).where(ApiKeyRow.version > version)
            return list((await session.scalars(query)).all())

    async def touch(self, last_used: Iterable[tuple[str, float]]) -> None:
        """Record when keys were last used (batched by the caller, off the request path)."""
        async with self._db.session() as session:
            for key_id, at in last_used:
                await session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=at)
                )
