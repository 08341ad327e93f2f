"""Timeouts in event-loop time: time the loop spends behind (a saturated worker) does not count.

A worker taking a burst of requests can run seconds behind on its event loop. A plain timeout
around a call to Redis then fires although Redis answered in a millisecond: the answer sat in the
socket while the loop was busy elsewhere. Counted that way, load looks like an outage and a
limiter turns a burst into 5xx. A :class:`LoopClock` measures how late the loop runs with one
heartbeat (a timer every ``interval``; each late wake-up adds its lateness to the lag), and its
:meth:`~LoopClock.timeout` expires only after ``seconds`` of time in which the loop kept time —
so a dead or unreachable peer still times out, a busy loop does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["LoopClock"]


class LoopClock:
    def __init__(self, interval: float = 0.05):
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag = 0.0
        self._beat = 0.0

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new loop (tests run several)
            self._loop, self._lag, self._beat = loop, 0.0, loop.time()
            self._task = loop.create_task(self._heartbeat(loop), name="chatgate-loop-clock")
        return loop

    async def _heartbeat(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await asyncio.sleep(self._interval)
            now = loop.time()
            self._lag += max(0.0, now - self._beat - self._interval)
            self._beat = now

    def lag(self, now: float) -> float:
        """Seconds the loop has run behind since this clock started, up to ``now`` (a
        heartbeat that is due but has not run yet counts too)."""
        return self._lag + max(0.0, now - self._beat - self._interval)

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[None]:
        """Like ``asyncio.timeout(seconds)`` (raises ``TimeoutError``), but counting only the time
        in which the loop kept time."""
        loop = self._start()
        started = loop.time()
        lag_before = self.lag(started)
        async with asyncio.timeout(None) as scope:
            handle: asyncio.TimerHandle | None = None

            def check() -> None:
                nonlocal handle
                now = loop.time()
                kept = (now - started) - (self.lag(now) - lag_before)
                if kept >= seconds:
                    scope.reschedule(now)  # expire: cancels the work, raises TimeoutError
                else:
                    handle = loop.call_at(now + seconds - kept, check)

            handle = loop.call_at(started + seconds, check)
            try:
                yield
            finally:
                handle.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
        self._loop = self._task = None
