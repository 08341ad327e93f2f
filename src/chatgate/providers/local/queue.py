"""Admission to a model instance that runs ``capacity`` jobs at once: by priority, then arrival;
bounded; the wait measured."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

from chatgate.protocol import OverloadedError

__all__ = ["GenerationQueue"]


class GenerationQueue:
    """Up to ``capacity`` running jobs, at most ``max_waiting`` waiting; a freed slot is handed
    to the waiter with the best priority (0 critical, 1 normal, 2 low), first come first served
    within a priority.

    ``acquire`` returns the seconds waited. ``release`` is called when the engine has truly
    finished with the job, so a cancelled request never lets another start on a full model.
    """

    def __init__(self, max_waiting: int, capacity: int = 1):
        self._max_waiting = max_waiting
        self._capacity = capacity
        self._running = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._depth = 0

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def busy(self) -> bool:
        """Whether any job runs."""
        return self._running > 0

    async def acquire(self, priority: int = 1) -> float:
        start = time.monotonic()
        if self._running < self._capacity and not self._depth:
            self._running += 1
            return 0.0
        if self._depth >= self._max_waiting:
            raise OverloadedError("The model is busy and its queue is full; retry shortly.")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), waiter))
        self._depth += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us just as we left: pass it on
            else:
                self._depth -= 1  # the heap entry is skipped when it surfaces
            raise
        return time.monotonic() - start

    def release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                self._depth -= 1
                waiter.set_result(None)  # the slot passes directly; the count stays
                return
        self._running -= 1
