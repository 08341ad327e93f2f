"""The fault run: the upstream fails 20% of requests (each kind in turn, then all mixed); with
retries and a fallback configured, clients see (almost) none of it.

A failure the gateway can't hide by design: a stream cut after content reached the client (no
second answer can be spliced onto the first). Those streams must end with an SSE error event
the SDK raises — never a silent, truncated "success" — and every other request must succeed.
``python -m bench faults`` runs the same at a larger scale and prints the rates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fake_upstream import FakeUpstream, chaos_config
from tests.support import Gateway, start_gateway

KINDS = ["429", "500", "reset", "timeout", "drop"]
JSON_REQUESTS = 100
STREAM_REQUESTS = 50
CONCURRENCY = 10


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream(stall=5.0)
    fake.start()
    gateway = start_gateway(Path(tmp_path_factory.mktemp("faults")), chaos_config(fake.base_url))
    yield gateway, fake
    gateway.stop()
    fake.stop()


async def run_clients(gateway: Gateway, requests: int, stream: bool) -> tuple[int, list[str]]:
    """(successes, failure descriptions); a success is a complete, correct answer."""
    client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    gate = asyncio.Semaphore(CONCURRENCY)
    failures: list[str] = []

    async def one(i: int) -> bool:
        text = f"request number {i} of the fault run"
        messages: list[openai.types.chat.ChatCompletionMessageParam] = [
            {"role": "user", "content": text}
        ]
        async with gate:
            try:
                if not stream:
                    answer = await client.chat.completions.create(
                        model="chaos-primary", messages=messages
                    )
                    got = answer.choices[0].message.content
                else:
                    chunks = await client.chat.completions.create(
                        model="chaos-primary", messages=messages, stream=True
                    )
                    pieces = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                    got = "".join(pieces)
            except openai.APIError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return False
        if got != text:
            failures.append(f"wrong or truncated answer: {got!r}")
            return False
        return True

    try:
        outcomes = await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        await client.close()
    return sum(outcomes), failures


@pytest.mark.parametrize("kind", [*KINDS, "mixed"])
def test_clients_succeed_while_the_upstream_fails_one_request_in_five(
    chaos: tuple[Gateway, FakeUpstream], kind: str
) -> None:
    gateway, fake = chaos
    fake.faults = {k: 0.2 / len(KINDS) for k in KINDS} if kind == "mixed" else {kind: 0.2}
    fake.injected.clear()
    before = len(fake.arrivals)

    ok_json, failed_json = asyncio.run(run_clients(gateway, JSON_REQUESTS, stream=False))
    ok_stream, failed_stream = asyncio.run(run_clients(gateway, STREAM_REQUESTS, stream=True))

    attempts = len(fake.arrivals) - before
    injected = sum(fake.injected.values())
    assert injected >= 0.1 * attempts, (injected, attempts)  # the faults really happened
    assert failed_json == [] and ok_json == JSON_REQUESTS, failed_json
    dropped_streams = fake.injected["drop-stream"]
    if dropped_streams == 0:
        assert failed_stream == [] and ok_stream == STREAM_REQUESTS, failed_stream
    else:
        # A stream cut after content was sent: the client must be told (SDK raises), never
        # handed a truncated answer as if complete; every other stream succeeds.
        assert all(f.startswith("APIError") for f in failed_stream), failed_stream
        assert len(failed_stream) <= dropped_streams
        assert ok_stream == STREAM_REQUESTS - len(failed_stream)
