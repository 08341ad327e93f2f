"""The local model's admission queue: FIFO hand-over, bounded length, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from chatgate.protocol import OverloadedError
from chatgate.providers.local.queue import GenerationQueue


@pytest.mark.anyio
async def test_fifo_hand_over_and_bound() -> None:
    queue = GenerationQueue(max_waiting=2)
    assert await queue.acquire() == 0.0
    order: list[int] = []

    async def wait(i: int) -> None:
        await queue.acquire()
        order.append(i)

    first = asyncio.ensure_future(wait(1))
    second = asyncio.ensure_future(wait(2))
    await asyncio.sleep(0)  # let both enqueue
    assert queue.depth == 2
    with pytest.raises(OverloadedError):
        await queue.acquire()
    queue.release()
    await first
    assert order == [1] and queue.busy
    queue.release()
    await second
    assert order == [1, 2]
    queue.release()
    assert not queue.busy


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_the_queue() -> None:
    queue = GenerationQueue(max_waiting=4)
    await queue.acquire()
    waiter = asyncio.ensure_future(queue.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.depth == 0
    queue.release()
    assert not queue.busy


@pytest.mark.anyio
async def test_priority_goes_first_then_arrival() -> None:
    queue = GenerationQueue(max_waiting=8)
    await queue.acquire()
    order: list[str] = []

    async def wait(name: str, priority: int) -> None:
        await queue.acquire(priority)
        order.append(name)
        queue.release()

    tasks = []
    for name, priority in [("low", 2), ("normal-1", 1), ("critical", 0), ("normal-2", 1)]:
        tasks.append(asyncio.ensure_future(wait(name, priority)))
        await asyncio.sleep(0)  # enqueue in this order
    assert queue.depth == 4
    queue.release()
    await asyncio.gather(*tasks)
    assert order == ["critical", "normal-1", "normal-2", "low"]
    assert not queue.busy


@pytest.mark.anyio
async def test_capacity_admits_that_many_at_once() -> None:
    """A batching model runs ``capacity`` jobs together; the next waits for a release."""
    queue = GenerationQueue(max_waiting=4, capacity=2)
    assert await queue.acquire() == 0.0
    assert await queue.acquire() == 0.0
    third = asyncio.ensure_future(queue.acquire())
    await asyncio.sleep(0)  # let it enqueue
    assert queue.depth == 1 and not third.done()
    queue.release()
    await third
    assert queue.depth == 0
    queue.release()
    queue.release()
    assert not queue.busy
