"""Request counts of browser tokens that carry a request limit (shared by every replica)."""

from __future__ import annotations

import time

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatgate.state.db import Database
from chatgate.state.tables import TokenUseRow

__all__ = ["TokenUses"]


class TokenUses:
    def __init__(self, db: Database):
        self._db = db

    async def consume(self, jti: str, limit: int, expires_at: float) -> bool:
        """Count one request for token ``jti``; False once ``limit`` requests were made."""
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        async with self._db.session() as session:
            await session.execute(
                insert(TokenUseRow)
                .values(jti=jti, used=0, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=["jti"])
            )
            result = await session.execute(
                update(TokenUseRow)
                .where(TokenUseRow.jti == jti, TokenUseRow.used < limit)
                .values(used=TokenUseRow.used + 1)
                .returning(TokenUseRow.used)
            )
            return result.first() is not None

    async def purge_expired(self) -> None:
        async with self._db.session() as session:
            await session.execute(delete(TokenUseRow).where(TokenUseRow.expires_at < time.time()))
