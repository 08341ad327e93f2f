"""Vector storage by day: each store's size sampled into a per-day ledger (the day keeps its
largest sample), and GB-days per key, owner, store or day read back for the usage report.

Sampling is idempotent (an upsert keeping the larger size), so any number of replicas may sample
the same day and nothing is counted twice."""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatgate.state.db import Database
from chatgate.state.tables import VectorStoreFileRow, VectorStoreRow, VectorStoreStorageRow

__all__ = ["GB", "STORAGE_GROUPS", "StorageLedger", "StorageRow", "day_of"]

GB = 1_000_000_000
STORAGE_GROUPS = ("key", "owner", "store", "day")
StorageGroup = Literal["key", "owner", "store", "day"]


def day_of(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class StorageRow:
    group: str
    gb_days: float
    cost: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StorageLedger:
    def __init__(self, db: Database):
        self._db = db

    async def sample(self, at: float) -> int:
        """Record every store's current size for the UTC day of ``at``; the number of stores."""
        day = day_of(at)
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        async with self._db.session() as session:
            sizes = (
                await session.execute(
                    select(
                        VectorStoreRow.id,
                        VectorStoreRow.key_id,
                        VectorStoreRow.owner,
                        func.coalesce(func.sum(VectorStoreFileRow.usage_bytes), 0),
                    )
                    .outerjoin(
                        VectorStoreFileRow, VectorStoreFileRow.vector_store_id == VectorStoreRow.id
                    )
                    .group_by(VectorStoreRow.id, VectorStoreRow.key_id, VectorStoreRow.owner)
                )
            ).all()
            for store_id, key_id, owner, size in sizes:
                statement = insert(VectorStoreStorageRow).values(
                    day=day, vector_store_id=store_id, key_id=key_id, owner=owner, bytes=int(size)
                )
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["day", "vector_store_id"],
                        set_={
                            "bytes": func.max(statement.excluded.bytes, VectorStoreStorageRow.bytes)
                        }
                        if self._db.is_sqlite
                        else {
                            "bytes": func.greatest(
                                statement.excluded.bytes, VectorStoreStorageRow.bytes
                            )
                        },
                    )
                )
        return len(sizes)

    async def report(
        self, group_by: StorageGroup, price: float, start: str | None, end: str | None
    ) -> list[StorageRow]:
        """GB-days (and their cost at ``price`` per GB-day) per group, over the days from
        ``start`` up to, not including, ``end`` (``YYYY-MM-DD``)."""
        column: Any = {
            "key": VectorStoreStorageRow.key_id,
            "owner": VectorStoreStorageRow.owner,
            "store": VectorStoreStorageRow.vector_store_id,
            "day": VectorStoreStorageRow.day,
        }[group_by]
        query = select(column, func.sum(VectorStoreStorageRow.bytes)).group_by(column)
        if start is not None:
            query = query.where(VectorStoreStorageRow.day >= start)
        if end is not None:
            query = query.where(VectorStoreStorageRow.day < end)
        async with self._db.session() as session:
            rows = (await session.execute(query.order_by(column))).all()
        out = []
        for group, total in rows:
            gb_days = float(total or 0) / GB
            out.append(StorageRow("-" if group is None else str(group), gb_days, gb_days * price))
        return out
