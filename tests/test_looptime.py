"""Timeouts in event-loop time: a loop that runs behind (a saturated worker) does not make a
prompt answer look late; an answer that never comes still times out."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatgate.looptime import LoopClock


async def _answered_while_the_loop_is_blocked() -> str:
    """An answer due 10 ms after the request, while the loop is blocked for 0.5 s right after
    it: by the time the loop runs again both the answer and a 0.2 s timer are due."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, answer.set_result, "answered")
    loop.call_soon(time.sleep, 0.5)  # the loop is busy with other work (blocking on purpose)
    return await answer


def test_a_plain_timeout_mistakes_a_busy_loop_for_a_late_answer() -> None:
    async def plain() -> str:
        async with asyncio.timeout(0.2):
            return await _answered_while_the_loop_is_blocked()

    with pytest.raises(TimeoutError):
        asyncio.run(plain())


def test_loop_time_does_not_count_the_time_the_loop_ran_behind() -> None:
    async def patient() -> str:
        clock = LoopClock()
        try:
            async with clock.timeout(0.2):
                return await _answered_while_the_loop_is_blocked()
        finally:
            await clock.close()

    assert asyncio.run(patient()) == "answered"


def test_an_answer_that_never_comes_still_times_out() -> None:
    async def never() -> None:
        clock = LoopClock()
        try:
            async with clock.timeout(0.1):
                await asyncio.Event().wait()
        finally:
            await clock.close()

    with pytest.raises(TimeoutError):
        asyncio.run(never())


def test_a_clock_serves_one_loop_after_another() -> None:
    clock = LoopClock()

    async def once() -> str:
        async with clock.timeout(1.0):
            await asyncio.sleep(0)
            return "ok"

    assert asyncio.run(once()) == "ok"
    assert asyncio.run(once()) == "ok"  # a new loop: the heartbeat starts again there
