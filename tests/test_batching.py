"""The embedded model serves concurrent requests in one batched decode loop: requests overlap
instead of queueing, a request's output is the same alone or in a batch, the batch is bounded
(`max_batch`) with the rest waiting by priority, and a request leaving a batch disturbs no one.

Orderings, not timers: "overlap" means a later request's first token arrives before an earlier
one's last token."""

from __future__ import annotations

import asyncio
import re
import time
from asyncio import Future
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import openai
import pytest

from chatgate.config import LocalModelConfig
from chatgate.protocol import ChatCompletionRequest, ChatgateError
from chatgate.providers.base import ChatCall
from chatgate.providers.local import LocalProvider
from tests.support import Gateway, raw, start_gateway

MODEL = "smollm2-135m-instruct"
BYPASS = {"x-chatgate-cache": "bypass"}  # every request really generates


@dataclass
class Run:
    text: str = ""
    first: float | None = None
    last: float | None = None
    finish: str | None = None


def body(topic: str, tokens: int = 40, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Write a few sentences about {topic}."}],
        "max_tokens": tokens,
        "temperature": 0,
        "logit_bias": {"2": -100},  # no end-of-turn: each runs to max_tokens
        **extra,
    }


def client_of(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


async def stream(
    client: openai.AsyncOpenAI,
    request: dict[str, Any],
    run: Run | None = None,
    headers: dict[str, str] | None = None,
) -> Run:
    run = run or Run()
    chunks = await client.chat.completions.create(
        **request, stream=True, extra_headers={**BYPASS, **(headers or {})}
    )
    async for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.delta.content:
            now = time.monotonic()
            run.first = run.first or now
            run.last = now
            run.text += choice.delta.content
        run.finish = choice.finish_reason or run.finish
    return run


def together(gateway: Gateway, *requests: dict[str, Any]) -> list[Run]:
    async def main() -> list[Run]:
        async with client_of(gateway) as client:
            return list(await asyncio.gather(*(stream(client, r) for r in requests)))

    return asyncio.run(main())


TOPICS = ["owls", "bridges", "volcanoes", "tea", "chess", "glaciers", "violins", "bees"]


def test_concurrent_streams_overlap(gateway: Gateway) -> None:
    runs = together(gateway, *(body(t, tokens=48) for t in TOPICS[:4]))
    assert all(r.finish == "length" for r in runs)
    starts = [r.first for r in runs if r.first is not None]
    ends = [r.last for r in runs if r.last is not None]
    assert len(starts) == len(ends) == 4
    # Every stream had its first token before any stream had its last: none waited its turn.
    assert max(starts) < min(ends)


def test_greedy_output_is_the_same_alone_or_in_a_batch(gateway: Gateway) -> None:
    alone = together(gateway, body("lighthouses", tokens=40))[0]
    batched = together(
        gateway, *(body(t, tokens=60) for t in TOPICS[:3]), body("lighthouses", tokens=40)
    )
    assert batched[-1].text == alone.text
    assert len(alone.text) > 40


def test_seeded_sampling_is_the_same_alone_or_in_a_batch(gateway: Gateway) -> None:
    seeded = body("rivers", tokens=32, temperature=1.0, seed=1234)
    alone = together(gateway, seeded)[0]
    batched = together(gateway, body("tea", tokens=50), seeded, body("chess", tokens=20))
    assert batched[1].text == alone.text


def test_a_stream_leaving_the_batch_disturbs_no_one(gateway: Gateway) -> None:
    expected = together(gateway, body("bees", tokens=40))[0].text

    async def main() -> tuple[Run, int]:
        async with client_of(gateway) as client:
            staying = asyncio.ensure_future(stream(client, body("bees", tokens=40)))
            leaving = await client.chat.completions.create(
                **body("glaciers", tokens=400), stream=True, extra_headers=BYPASS
            )
            seen = 0
            async for _chunk in leaving:
                seen += 1
                if seen == 3:
                    break
            await leaving.response.aclose()
            return await staying, seen

    stayed, _ = asyncio.run(main())
    assert stayed.text == expected


def test_n_choices_generate_together_and_reproducibly(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    request = body("maps", tokens=24, temperature=1.0, seed=99, n=3)
    first = client.chat.completions.create(**request, extra_headers=BYPASS)
    again = client.chat.completions.create(**request, extra_headers=BYPASS)
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in again.choices]
    assert len(set(texts)) > 1  # seeds differ per choice
    assert first.usage is not None and 3 <= first.usage.completion_tokens <= 3 * 24


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """max_batch 2: a third request waits for a place."""
    config = f"models:\n  - name: {MODEL}\n    provider: local\n    max_batch: 2\n"
    server = start_gateway(tmp_path_factory.mktemp("narrow"), config=config)
    yield server
    server.stop()


def test_beyond_max_batch_requests_wait_for_a_place(narrow: Gateway) -> None:
    async def main() -> list[Run]:
        async with client_of(narrow) as client:
            running = await placed(client, body("owls", tokens=60), body("tea", tokens=60))
            third = await stream(client, body("bees", tokens=20))
            return [*await asyncio.gather(*running), third]

    runs = asyncio.run(main())
    first_two_end = min(r.last for r in runs[:2] if r.last is not None)
    # The third started only once one of the two running had finished.
    assert runs[2].first is not None and runs[2].first >= first_two_end
    assert all(r.finish == "length" for r in runs)


async def placed(client: openai.AsyncOpenAI, *requests: dict[str, Any]) -> list[Future[Run]]:
    """Streams started one after another, each once the one before has its first token (so
    each holds a place in the batch, in this order)."""
    futures: list[Future[Run]] = []
    for request in requests:
        run = Run()
        futures.append(asyncio.ensure_future(stream(client, request, run)))
        await until(partial(getattr, run, "first"))
    return futures


def queue_depth(gateway: Gateway) -> int:
    metrics = raw(f"{gateway.url}/metrics").body.decode()
    match = re.search(rf'chatgate_model_queue_depth{{model="{MODEL}"}} ([0-9.]+)', metrics)
    assert match, metrics[-500:]
    return int(float(match.group(1)))


async def until(condition: Callable[[], bool]) -> None:
    """Poll a server-side fact (bounded): what a request waits on, not how long it takes."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def test_waiting_requests_go_by_priority(narrow: Gateway) -> None:
    async def main() -> list[Run]:
        async with client_of(narrow) as client:
            # Different lengths: one place frees, then the other (freed together, both waiting
            # requests would start in one step and their first tokens would race to the client).
            running = await placed(client, body("a", tokens=80), body("b", tokens=200))
            low = asyncio.ensure_future(
                stream(client, body("low", tokens=8), headers={"x-chatgate-priority": "low"})
            )
            await until(lambda: queue_depth(narrow) == 1)
            high = asyncio.ensure_future(
                stream(client, body("high", tokens=8), headers={"x-chatgate-priority": "critical"})
            )
            await until(lambda: queue_depth(narrow) == 2)
            return list(await asyncio.gather(*running, low, high))

    a, b, low, high = asyncio.run(main())
    assert a.last is not None and b.last is not None
    assert high.first is not None and low.first is not None
    assert high.first < low.first  # the later, higher-priority request went first
    assert a.last <= high.first  # and only once a place was free


def test_the_prompt_is_tokenized_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The context check counts the prompt's tokens; the call reuses them."""

    async def main() -> int:
        provider = LocalProvider(LocalModelConfig(name=MODEL, max_batch=1, n_ctx=512))
        await provider.start()
        engine, _ = await provider._ready_engine()
        calls = 0
        tokenize = engine.tokenize

        def counting(text: str) -> list[int]:
            nonlocal calls
            calls += 1
            return tokenize(text)

        monkeypatch.setattr(engine, "tokenize", counting)
        raw_body = body("once", tokens=2)
        request = ChatCompletionRequest.model_validate(raw_body)
        assert await provider.count_tokens(request)
        call = ChatCall(request, raw_body, "req_once", time.monotonic() + 60)
        completion = await provider.complete(call)
        assert completion["usage"]["completion_tokens"] == 2
        await provider.close()
        return calls

    assert asyncio.run(main()) == 1


def test_a_failing_step_ends_its_requests_with_an_error_and_the_engine_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A llama.cpp failure in a decode step answers the requests in that step with an error
    (never a hang) and frees their places; the next request is served normally."""

    async def main() -> None:
        provider = LocalProvider(LocalModelConfig(name=MODEL, max_batch=2, n_ctx=512))
        await provider.start()
        engine, _ = await provider._ready_engine()
        context = engine._ctx
        decode = context.decode
        failures = iter([True])

        def failing_once(batch: Any) -> None:
            if next(failures, False):
                raise RuntimeError("llama_decode returned -1")
            decode(batch)

        monkeypatch.setattr(context, "decode", failing_once)

        def call(topic: str) -> ChatCall:
            raw_body = body(topic, tokens=3)
            request = ChatCompletionRequest.model_validate(raw_body)
            return ChatCall(request, raw_body, f"req_{topic}", time.monotonic() + 60)

        with pytest.raises(ChatgateError, match="failed while generating"):
            await asyncio.wait_for(provider.complete(call("first")), 60)
        completion = await asyncio.wait_for(provider.complete(call("second")), 60)
        assert completion["usage"]["completion_tokens"] == 3
        assert provider.queue_depth == 0
        await provider.close()

    asyncio.run(main())
