"""Requests waiting for rate-limit capacity, served critical first, then normal, then low, and in
arrival order within a priority. Each replica orders its own waiters."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chatgate.limits.base import Decision

__all__ = ["PRIORITY_NAMES", "PriorityGate"]

PRIORITY_NAMES = ("critical", "normal", "low")


@dataclass(order=True)
class _Ticket:
    priority: int
    seq: int
    wake: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class PriorityGate:
    def __init__(self) -> None:
        self._heap: list[_Ticket] = []
        self._seq = itertools.count()
        self.waited_total = 0.0
        """Seconds spent waiting, summed over every request that waited."""
        self.waited_count = 0

    def depth(self) -> dict[str, int]:
        counts = dict.fromkeys(PRIORITY_NAMES, 0)
        for ticket in self._heap:
            counts[PRIORITY_NAMES[ticket.priority]] += 1
        return counts

    def ahead(self, priority: int) -> bool:
        """Is someone of this priority or better already waiting here?"""
        return any(ticket.priority <= priority for ticket in self._heap)

    def notify(self) -> None:
        """Capacity may have freed (a request here ended): let the first waiter try now."""
        if self._heap:
            self._heap[0].wake.set()

    async def wait(
        self,
        priority: int,
        attempt: Callable[[], Awaitable[Decision]],
        last: Decision,
        until: float,
    ) -> Decision:
        """Retry ``attempt`` when this request's turn comes, until admitted or ``until``
        (monotonic) passes; returns the last decision."""
        ticket = _Ticket(priority, next(self._seq))
        heapq.heappush(self._heap, ticket)
        started = time.monotonic()
        try:
            while True:
                while self._heap[0] is not ticket:
                    await self._sleep(ticket, until - time.monotonic())
                    if time.monotonic() >= until:
                        return last
                left = until - time.monotonic()
                if left <= 0:
                    return last
                await self._sleep(ticket, min(max(last.retry_after, 0.005), left))
                last = await attempt()
                if last.admitted or last.never:
                    return last
        finally:
            self._heap.remove(ticket)
            heapq.heapify(self._heap)
            self.waited_total += time.monotonic() - started
            self.waited_count += 1
            self.notify()

    @staticmethod
    async def _sleep(ticket: _Ticket, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ticket.wake.wait(), seconds)
        ticket.wake.clear()
