"""A client that goes away, or a request past its time limit, stops generation at once."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import Gateway, post_json, sse_events, start_gateway

MODEL = "smollm2-135m-instruct"
ENDLESS = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Write a very long story."}],
    "max_tokens": 4000,
    "logit_bias": {"2": -100},  # no end-of-turn: only the cap (or a cancel) ends it
}


def queue_wait_ms(headers: dict[str, str]) -> float:
    match = re.search(r"queue;dur=([\d.]+)", headers["server-timing"])
    assert match, headers["server-timing"]
    return float(match.group(1))


def full_generation_ms(gateway: Gateway) -> float:
    """How long ENDLESS would run if nothing stopped it, from this machine's measured speed."""
    started = time.perf_counter()
    response = post_json(f"{gateway.base_url}/chat/completions", {**ENDLESS, "max_tokens": 24})
    elapsed = time.perf_counter() - started
    assert response.json()["usage"]["completion_tokens"] == 24
    return elapsed / 24 * ENDLESS["max_tokens"] * 1000  # type: ignore[operator]


def next_request_wait(gateway: Gateway) -> float:
    response = post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    assert response.status == 200
    return queue_wait_ms(response.headers)


async def _open_stream_then_leave(url: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={**ENDLESS, "stream": True}) as response,
    ):
        assert response.status == 200
        seen = 0
        async for line in response.content:
            if line.startswith(b"data: "):
                seen += 1
            if seen == 3:
                break
    return seen


async def _give_up_waiting(url: str) -> None:
    timeout = aiohttp.ClientTimeout(total=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(url, json=ENDLESS) as response:
                await response.read()


def test_stream_disconnect_cancels_generation(gateway: Gateway) -> None:
    budget = full_generation_ms(gateway)
    url = f"{gateway.base_url}/chat/completions"
    assert asyncio.run(_open_stream_then_leave(url)) == 3
    assert next_request_wait(gateway) < budget / 10


def test_non_stream_disconnect_cancels_generation(gateway: Gateway) -> None:
    budget = full_generation_ms(gateway)
    asyncio.run(_give_up_waiting(f"{gateway.base_url}/chat/completions"))
    assert next_request_wait(gateway) < budget / 10


@pytest.fixture(scope="module")
def short_timeout_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path_factory.mktemp("timeout"), env={"CHATGATE_SERVER__REQUEST_TIMEOUT": "3"}
    )
    yield server
    server.stop()


def test_request_timeout_is_504_and_frees_the_model(
    gateway: Gateway, short_timeout_gateway: Gateway
) -> None:
    # Calibrated on a gateway without the 3 s limit: on a loaded machine the calibration request
    # itself could run past it.
    budget = full_generation_ms(gateway)
    limited = short_timeout_gateway
    response = post_json(f"{limited.base_url}/chat/completions", ENDLESS)
    assert response.status == 504
    assert response.json()["error"]["type"] == "timeout"
    assert next_request_wait(limited) < budget / 10


def test_timeout_mid_stream_is_an_sse_error_event(short_timeout_gateway: Gateway) -> None:
    gateway = short_timeout_gateway
    response = post_json(f"{gateway.base_url}/chat/completions", {**ENDLESS, "stream": True})
    assert response.status == 200
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    last: dict[str, Any] = json.loads(events[-2])
    assert last["error"]["type"] == "timeout"
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"


def test_log_names_the_cancelled_request(gateway: Gateway, tmp_path: Path) -> None:
    asyncio.run(_give_up_waiting(f"{gateway.base_url}/chat/completions"))
    next_request_wait(gateway)
    assert "client disconnected; request req_" in gateway.log_with("client disconnected")
