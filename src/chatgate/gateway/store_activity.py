"""Vector stores' last activity (a search, a chat grounded on them), recorded off the request
path: a store is written at most once a minute, in batches, however often it is searched.

Activity moves a store's ``last_active_at`` and with it an ``expires_after`` expiry, which
counts in days; a minute of lag cannot matter, a write per search would (it was one UPDATE
transaction per search)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from chatgate.state.vector_stores import VectorStoreStore
from chatgate.tasks import stop_task

__all__ = ["StoreActivity"]

log = logging.getLogger("chatgate.vector_stores")


class StoreActivity:
    def __init__(self, store: VectorStoreStore, *, every: float = 60.0, flush: float = 1.0):
        self._store = store
        self._every = every
        self._flush_interval = flush
        self._written: dict[str, float] = {}
        """Store id -> when its activity was last queued for writing (monotonic)."""
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def touched(self, store_ids: Iterable[str]) -> None:
        """These stores were just used: queue the ones not written within the last minute."""
        now = time.monotonic()
        for store_id in store_ids:
            if now - self._written.get(store_id, -self._every) >= self._every:
                self._written[store_id] = now
                self._pending.add(store_id)

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = sorted(self._pending), set()
        try:
            await self._store.touch(pending)
        except Exception:
            log.exception("recording activity of %d vector stores failed; retrying", len(pending))
            self._pending.update(pending)
        horizon = time.monotonic() - self._every
        self._written = {s: t for s, t in self._written.items() if t > horizon}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flusher(), name="chatgate-store-activity")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self.flush()
