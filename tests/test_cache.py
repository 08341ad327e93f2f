"""The response cache and in-flight de-duplication, through the HTTP path."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import (
    MASTER,
    Gateway,
    RawResponse,
    assert_openai_shape,
    post_json,
    sse_events,
    start_gateway,
)
from tests.test_auth import create_key


def config(upstream: FakeUpstream, extra: str = "") -> str:
    return (
        f"{extra}\nmodels:\n  - name: echo\n    provider: openai_compat\n"
        f"    base_url: {upstream.base_url}\n"
        + "".join(
            f"  - name: {name}\n    provider: openai_compat\n    base_url: {upstream.base_url}\n"
            f"    upstream_model: {name}\n"
            for name in ("sleep-1-herd", "sleep-1-stay", "sleep-1-json")
        )
    )


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path_factory.mktemp("cache"),
        config=config(upstream),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    yield server
    server.stop()


def ask(
    gateway: Gateway,
    text: str,
    key: str = MASTER,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> RawResponse:
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], **fields}
    return post_json(
        f"{gateway.base_url}/chat/completions",
        body,
        Authorization=f"Bearer {key}",
        **(headers or {}),
    )


def calls(upstream: FakeUpstream, text: str) -> int:
    return sum(1 for a in upstream.arrivals if a.endswith(f":{text}"))


def test_deterministic_requests_are_served_from_the_cache(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    first = ask(gateway, "cache me", temperature=0)
    second = ask(gateway, "cache me", temperature=0, user="someone-else", metadata={"a": "b"})
    assert first.headers["x-chatgate-cache"] == "miss"
    assert second.headers["x-chatgate-cache"] == "hit"
    assert calls(upstream, "cache me") == 1
    one, two = first.json(), second.json()
    assert two["choices"] == one["choices"] and two["id"] != one["id"]
    assert two["usage"]["prompt_tokens_details"]["cached_tokens"] == one["usage"]["prompt_tokens"]
    assert_openai_shape(two, "CreateChatCompletionResponse")


def test_seeded_requests_are_cached_too(gateway: Gateway, upstream: FakeUpstream) -> None:
    ask(gateway, "seeded", seed=42)
    assert ask(gateway, "seeded", seed=42).headers["x-chatgate-cache"] == "hit"
    assert ask(gateway, "seeded", seed=43).headers["x-chatgate-cache"] == "miss"


def test_sampled_requests_bypass_unless_asked(gateway: Gateway, upstream: FakeUpstream) -> None:
    assert ask(gateway, "sampled", temperature=1).headers["x-chatgate-cache"] == "bypass"
    assert ask(gateway, "sampled", temperature=1).headers["x-chatgate-cache"] == "bypass"
    assert calls(upstream, "sampled") == 2
    use = {"x-chatgate-cache": "use"}
    assert (
        ask(gateway, "opted in", headers=use, temperature=1).headers["x-chatgate-cache"] == "miss"
    )
    assert ask(gateway, "opted in", headers=use, temperature=1).headers["x-chatgate-cache"] == "hit"


def test_refresh_and_bypass(gateway: Gateway, upstream: FakeUpstream) -> None:
    ask(gateway, "refresh me", temperature=0)
    refreshed = ask(gateway, "refresh me", headers={"x-chatgate-cache": "refresh"}, temperature=0)
    assert refreshed.headers["x-chatgate-cache"] == "miss"
    assert calls(upstream, "refresh me") == 2
    assert ask(gateway, "refresh me", temperature=0).headers["x-chatgate-cache"] == "hit"
    bypass = ask(gateway, "refresh me", headers={"x-chatgate-cache": "bypass"}, temperature=0)
    assert bypass.headers["x-chatgate-cache"] == "bypass"
    assert calls(upstream, "refresh me") == 3


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x-chatgate-cache": "always"}, "x-chatgate-cache"),
        ({"x-chatgate-cache-ttl": "x"}, "x-chatgate-cache-ttl"),
    ],
)
def test_bad_cache_headers_are_400(gateway: Gateway, headers: dict[str, str], param: str) -> None:
    response = ask(gateway, "bad header", headers=headers, temperature=0)
    assert response.status == 400
    assert response.json()["error"]["param"] == param


def _stream_text(response: RawResponse) -> tuple[str, list[Any]]:
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks


def test_a_hit_for_a_stream_is_replayed_as_a_proper_stream(gateway: Gateway) -> None:
    ask(gateway, "fill by json", temperature=0)
    replayed = ask(
        gateway, "fill by json", temperature=0, stream=True, stream_options={"include_usage": True}
    )
    assert replayed.headers["x-chatgate-cache"] == "hit"
    text, chunks = _stream_text(replayed)
    assert text == "fill by json"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] > 0
    for chunk in chunks:
        assert_openai_shape(chunk, "CreateChatCompletionStreamResponse")


def test_a_stream_fills_the_cache_for_json_requests(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    streamed = ask(gateway, "fill by stream", temperature=0, stream=True)
    assert streamed.headers["x-chatgate-cache"] == "miss"
    full = ask(gateway, "fill by stream", temperature=0)
    assert full.headers["x-chatgate-cache"] == "hit"
    assert full.json()["choices"][0]["message"]["content"] == "fill by stream"
    assert calls(upstream, "fill by stream") == 1


def test_keys_do_not_share_answers_by_default(gateway: Gateway, upstream: FakeUpstream) -> None:
    alice, bob = create_key(gateway), create_key(gateway)
    ask(gateway, "private", key=alice["secret"], temperature=0)
    assert (
        ask(gateway, "private", key=bob["secret"], temperature=0).headers["x-chatgate-cache"]
        == "miss"
    )
    assert (
        ask(gateway, "private", key=alice["secret"], temperature=0).headers["x-chatgate-cache"]
        == "hit"
    )


def test_shared_cache_on_redis_serves_other_replicas_and_keys(
    upstream: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    where = f"redis_url: '{redis_url}', redis_prefix: test-{secrets.token_hex(4)}"
    extra = f"cache: {{backend: redis, scope: shared, {where}}}"
    one = start_gateway(tmp_path / "one", config=config(upstream, extra))
    two = start_gateway(tmp_path / "two", config=config(upstream, extra))
    try:
        text = f"shared {tmp_path.name}"
        assert ask(one, text, key="unused", temperature=0).headers["x-chatgate-cache"] == "miss"
        assert ask(two, text, key="unused", temperature=0).headers["x-chatgate-cache"] == "hit"
        assert calls(upstream, text) == 1
    finally:
        one.stop()
        two.stop()


async def _herd(gateway: Gateway, model: str, count: int, leave: int = 0) -> list[list[bytes]]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "herd"}],
        "temperature": 0,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {MASTER}"}

    async def one(i: int, session: aiohttp.ClientSession) -> list[bytes]:
        lines: list[bytes] = []
        async with session.post(
            f"{gateway.base_url}/chat/completions", json=body, headers=headers
        ) as response:
            assert response.status == 200
            async for line in response.content:
                if line.startswith(b"data: "):
                    lines.append(line)
                    if i < leave:
                        return lines  # this client goes away after its first chunk
        return lines

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        return await asyncio.gather(*(one(i, session) for i in range(count)))


def test_identical_concurrent_streams_share_one_upstream_call(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    streams = asyncio.run(_herd(gateway, "sleep-1-herd", 20))
    assert len(upstream.times["sleep-1-herd"]) == 1
    assert all(stream == streams[0] for stream in streams)
    assert streams[0][-1] == b"data: [DONE]\n"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in streams[0][:-1]
    )
    assert text == "herd"


def test_one_client_leaving_does_not_cancel_the_others(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    streams = asyncio.run(_herd(gateway, "sleep-1-stay", 5, leave=2))
    assert len(upstream.times["sleep-1-stay"]) == 1
    complete = streams[2:]
    assert all(s == complete[0] for s in complete) and complete[0][-1] == b"data: [DONE]\n"


async def _concurrent_json(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    body = {
        "model": "sleep-1-json",
        "messages": [{"role": "user", "content": "same"}],
        "temperature": 0,
    }
    async with aiohttp.ClientSession() as session:

        async def one() -> dict[str, Any]:
            async with session.post(
                f"{gateway.base_url}/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {MASTER}"},
            ) as response:
                result: dict[str, Any] = await response.json()
                return result

        return await asyncio.gather(*(one() for _ in range(count)))


def test_identical_concurrent_requests_share_one_call(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    answers = asyncio.run(_concurrent_json(gateway, 8))
    assert len(upstream.times["sleep-1-json"]) == 1
    assert all(a["choices"] == answers[0]["choices"] for a in answers)
