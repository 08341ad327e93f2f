"""Settled spend per scope (``key:…``, ``owner:…``) and period (``total``, ``d:2026-11-25``,
``m:2026-11``), the durable side of budgets."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatgate.state.db import Database
from chatgate.state.tables import SpendRow

__all__ = ["SpendStore"]


class SpendStore:
    def __init__(self, db: Database):
        self._db = db

    async def add(self, amounts: Iterable[tuple[str, str, float]]) -> None:
        """Add ``amount`` to each (scope, period), in one transaction."""
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        now = time.time()
        async with self._db.session() as session:
            for scope, period, amount in amounts:
                statement = insert(SpendRow).values(
                    scope=scope, period=period, amount=amount, updated_at=now
                )
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["scope", "period"],
                        set_={"amount": SpendRow.amount + amount, "updated_at": now},
                    )
                )

    async def get(self, scope: str, periods: Iterable[str]) -> dict[str, float]:
        wanted = list(periods)
        async with self._db.session() as session:
            rows = await session.execute(
                select(SpendRow.period, SpendRow.amount).where(
                    SpendRow.scope == scope, SpendRow.period.in_(wanted)
                )
            )
            found = {str(period): float(amount) for period, amount in rows.tuples().all()}
        return {period: found.get(period, 0.0) for period in wanted}
