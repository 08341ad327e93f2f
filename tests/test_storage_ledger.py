"""The vector storage ledger on both store backends: a day keeps its largest sample (samples from
any number of replicas count once), and GB-days are reported per key, owner, store and day."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import update

from chatgate.state.db import Database
from chatgate.state.storage import GB, StorageLedger
from chatgate.state.tables import VectorStoreFileRow
from chatgate.state.vector_stores import VectorStoreStore

pytestmark = pytest.mark.anyio

DAY = 86400.0
MONDAY = 1796601600.0  # 2026-12-07 00:00 UTC


async def _store_of(db: Database, size: int, key_id: str, owner: str) -> str:
    stores = VectorStoreStore(db)
    store_id = await stores.create(
        key_id=key_id, owner=owner, name="s", description=None, metadata=None,
        expires_after=None, embedding_model="m",
    )  # fmt: skip
    file_id = f"file-{secrets.token_hex(4)}"
    await stores.add_files(store_id, [(file_id, "a.txt", {"type": "auto"}, None)])
    await _resize(db, store_id, size)
    return store_id


async def _resize(db: Database, store_id: str, size: int) -> None:
    async with db.session() as session:
        await session.execute(
            update(VectorStoreFileRow)
            .where(VectorStoreFileRow.vector_store_id == store_id)
            .values(usage_bytes=size)
        )


async def test_a_day_keeps_its_largest_sample_and_reports_gb_days(db: Database) -> None:
    ledger = StorageLedger(db)
    owner = f"team-{secrets.token_hex(3)}"
    big = await _store_of(db, 3 * GB, f"k{secrets.token_hex(3)}", owner)
    small = await _store_of(db, GB // 2, f"k{secrets.token_hex(3)}", owner)
    await ledger.sample(MONDAY + 60)
    await _resize(db, big, GB)  # it shrank later that day: the day is charged at its largest
    await ledger.sample(MONDAY + 3600)
    await ledger.sample(MONDAY + 3600)  # a second replica sampling too changes nothing
    await ledger.sample(MONDAY + DAY + 60)  # Tuesday: 1 GB
    by_store = {
        row.group: row for row in await ledger.report("store", 0.10, "2026-12-07", "2026-12-09")
    }
    assert by_store[big].gb_days == pytest.approx(4.0)  # 3 GB Monday + 1 GB Tuesday
    assert by_store[big].cost == pytest.approx(0.40)
    assert by_store[small].gb_days == pytest.approx(1.0)  # 0.5 GB on each day
    only_monday = await ledger.report("owner", 0.10, "2026-12-07", "2026-12-08")
    assert [(r.group, r.gb_days) for r in only_monday if r.group == owner] == [(owner, 3.5)]
