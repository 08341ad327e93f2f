"""Vector storage metered over time: every store's size sampled into the day's ledger each
``vector_stores.storage_interval`` (and at start), off the request path; a day is charged at its
largest sample, at ``vector_stores.storage_price`` per GB-day."""

from __future__ import annotations

import asyncio
import logging
import time

from chatgate.state.storage import StorageLedger
from chatgate.tasks import stop_task

__all__ = ["StorageMeter"]

log = logging.getLogger("chatgate.vector_stores")


class StorageMeter:
    def __init__(self, ledger: StorageLedger, interval: float):
        self.ledger = ledger
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chatgate-storage-meter")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.ledger.sample(time.time())
            except Exception:
                log.exception("sampling vector storage failed; trying again next interval")
            await asyncio.sleep(self._interval)
