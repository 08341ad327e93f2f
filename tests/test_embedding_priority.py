"""On the embedded encoder, interactive work goes ahead of background work (batch lines at low
priority, ingestion): background inputs run in small groups, so an interactive request arriving
while a large background call is running waits for one group at most, not for the whole call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatgate.config import LocalEmbeddingModelConfig
from chatgate.providers.embedding import BACKGROUND, INTERACTIVE, LocalEmbeddingProvider

pytestmark = pytest.mark.anyio


async def test_an_interactive_request_overtakes_a_large_background_call() -> None:
    provider = LocalEmbeddingProvider(LocalEmbeddingModelConfig(name="encoder"))
    await provider.start()
    try:
        await provider.dimensions()  # loaded before the race
        finished: list[str] = []

        async def embed(name: str, texts: list[str], priority: int) -> None:
            await provider.embed(texts, priority=priority)
            finished.append(name)

        loop = asyncio.get_running_loop()
        running = asyncio.Event()
        encode = provider._encoder.encode

        def watched(*args: Any, **kwargs: Any) -> Any:  # observes the model runs, changes nothing
            loop.call_soon_threadsafe(running.set)
            return encode(*args, **kwargs)

        provider._encoder.encode = watched  # type: ignore[method-assign]
        background = asyncio.ensure_future(
            embed("background", [f"chunk number {i}" for i in range(64)], BACKGROUND)
        )
        await running.wait()  # the encoder is busy with background work: now a question comes
        await asyncio.gather(background, embed("interactive", ["a question"], INTERACTIVE))
        assert finished == ["interactive", "background"]
    finally:
        await provider.close()
