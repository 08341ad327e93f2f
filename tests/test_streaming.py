"""SSE streaming on the embedded model: chunk shapes, usage chunk, parity with non-streamed."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support import Gateway, assert_openai_shape, post_json, sse_events

MODEL = "smollm2-135m-instruct"
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Tell me a fact about owls."}]


def stream_raw(gateway: Gateway, **payload: Any) -> list[Any]:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 12, "stream": True, **payload}
    response = post_json(f"{gateway.base_url}/chat/completions", body)
    assert response.status == 200, response.body
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_stream_chunk_protocol(gateway: Gateway) -> None:
    chunks = stream_raw(gateway)
    for chunk in chunks:
        assert_openai_shape(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["object"] == "chat.completion.chunk"
        assert "usage" not in chunk
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]
    ]
    assert finishes == ["length"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_include_usage_adds_a_final_usage_chunk(gateway: Gateway) -> None:
    chunks = stream_raw(gateway, stream_options={"include_usage": True})
    *body, last = chunks
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 12
    usage = last["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all(c["usage"] is None for c in body)
    assert_openai_shape(last, "CreateChatCompletionStreamResponse")


def test_stream_options_without_stream_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=ASK, stream_options={"include_usage": True}
        )
    assert caught.value.body["param"] == "stream_options"  # type: ignore[index]


def test_streamed_text_equals_non_streamed_at_temperature_zero(client: openai.OpenAI) -> None:
    fresh = {"x-chatgate-cache": "bypass"}  # two real generations, not a cache replay
    full = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=30, temperature=0, extra_headers=fresh
    )
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=30, temperature=0, stream=True, extra_headers=fresh
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == full.choices[0].message.content


def test_n_choices_stream_each_finishing_on_its_own(gateway: Gateway) -> None:
    chunks = stream_raw(gateway, n=2, seed=3, temperature=1.0, max_tokens=6)
    by_choice: dict[int, list[Any]] = {0: [], 1: []}
    for chunk in chunks:
        (choice,) = chunk["choices"]
        by_choice[choice["index"]].append(choice)
    for choices in by_choice.values():
        assert choices[0]["delta"]["role"] == "assistant"
        assert [c["finish_reason"] for c in choices if c["finish_reason"]] == ["length"]
        assert choices[-1]["finish_reason"] == "length"


def test_streamed_logprobs(gateway: Gateway) -> None:
    chunks = stream_raw(gateway, logprobs=True, top_logprobs=2, temperature=0)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    tokens = [
        entry["token"]
        for c in chunks
        if c["choices"][0]["logprobs"]
        for entry in c["choices"][0]["logprobs"]["content"]
    ]
    assert "".join(tokens) == text


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"term": {"type": "string", "maxLength": 20}},
                "required": ["term"],
            },
        },
    }
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Look up owls"}],
        tools=[tool],
        tool_choice="required",
        stream=True,
        max_tokens=40,
        temperature=0,
    )
    calls: list[Any] = []
    finish = []
    for chunk in stream:
        choice = chunk.choices[0]
        calls += choice.delta.tool_calls or []
        if choice.finish_reason:
            finish.append(choice.finish_reason)
    assert finish == ["tool_calls"]
    assert calls[0].function.name == "lookup"
    assert "term" in json.loads(calls[0].function.arguments)


@pytest.mark.anyio
async def test_async_client_streams(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=5, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.anyio
async def test_async_client_completes(async_client: openai.AsyncOpenAI) -> None:
    response = await async_client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3)
    assert response.usage is not None
    assert response.usage.completion_tokens == 3


def test_streams_are_never_buffered_or_compressed(gateway: Gateway) -> None:
    # Proxies (nginx) buffer and compress unless told not to; a compressed stream arrives whole.
    body = {"model": MODEL, "messages": ASK, "max_tokens": 4, "stream": True}
    response = post_json(
        f"{gateway.base_url}/chat/completions", body, **{"Accept-Encoding": "gzip, br"}
    )
    assert response.status == 200
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["cache-control"] == "no-cache"
    assert "content-encoding" not in response.headers
    assert sse_events(response.body)[-1] == "[DONE]"  # plain text, readable as it came
