"""Admission to a model instance that runs one job at a time: FIFO, bounded, wait measured."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from chatgate.protocol import OverloadedError

__all__ = ["GenerationQueue"]


class GenerationQueue:
    """One running job, at most ``max_waiting`` waiting; the slot is handed over in order.

    ``acquire`` returns the seconds waited. ``release`` is called when the job's thread has truly
    stopped, so a cancelled request never lets the next one start on a busy model.
    """

    def __init__(self, max_waiting: int):
        self._max_waiting = max_waiting
        self._busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def depth(self) -> int:
        return len(self._waiters)

    @property
    def busy(self) -> bool:
        return self._busy

    async def acquire(self) -> float:
        start = time.monotonic()
        if not self._busy and not self._waiters:
            self._busy = True
            return 0.0
        if len(self._waiters) >= self._max_waiting:
            raise OverloadedError(
                "The model is busy and its queue is full; retry shortly.",
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us just as we left: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        return time.monotonic() - start

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes directly; _busy stays True
                return
        self._busy = False
