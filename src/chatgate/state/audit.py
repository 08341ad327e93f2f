"""The audit log of admin actions: who did what to which object, and when."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.state.db import Database
from chatgate.state.tables import AuditRow

__all__ = ["AuditEntry", "AuditLog", "record_audit"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


async def record_audit(
    session: AsyncSession, actor: str, action: str, target: str | None, details: dict[str, Any]
) -> None:
    """Add an entry in the caller's transaction, so the action and its record land together."""
    session.add(
        AuditRow(at=time.time(), actor=actor, action=action, target=target, details=details)
    )


class AuditLog:
    def __init__(self, db: Database):
        self._db = db

    async def record(
        self, actor: str, action: str, target: str | None, details: dict[str, Any]
    ) -> None:
        async with self._db.session() as session:
            await record_audit(session, actor, action, target, details)

    async def entries(self, *, limit: int = 100, since: float | None = None) -> list[AuditEntry]:
        async with self._db.session() as session:
            query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            if since is not None:
                query = query.where(AuditRow.at >= since)
            rows = (await session.scalars(query)).all()
            return [
                AuditEntry(r.id, r.at, r.actor, r.action, r.target, dict(r.details)) for r in rows
            ]
