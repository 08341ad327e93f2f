"""Fitting requests into the context window: the 400 by default, dropping whole turns (oldest
first, or from the middle), keeping tool calls with their results, and clamping max_tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, RawResponse, post_json, start_gateway


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = f"""
models:
  - name: small
    provider: openai_compat
    base_url: {upstream.base_url}
    upstream_model: gpt-4o-small-window
    context_window: 300
  - name: forgiving
    provider: openai_compat
    base_url: {upstream.base_url}
    context_window: 300
    context_overflow: truncate_oldest
    context_clamp: true
"""
    server = start_gateway(tmp_path_factory.mktemp("context"), config=config)
    yield server
    server.stop()


def turn(i: int) -> list[dict[str, Any]]:
    words = " ".join(f"word{i}" for _ in range(20))
    return [
        {"role": "user", "content": f"question {i}: {words}"},
        {"role": "assistant", "content": f"answer {i}: {words}"},
    ]


def history(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages += turn(i)
    messages.append({"role": "user", "content": "final question"})
    return messages


def ask(gateway: Gateway, model: str, messages: list[dict[str, Any]], **fields: Any) -> RawResponse:
    body = {"model": model, "messages": messages, "max_tokens": 20, **fields}
    return post_json(f"{gateway.base_url}/chat/completions", body)


def sent(upstream: FakeUpstream) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = upstream.received[-1].body["messages"]
    return messages


def test_overflow_is_a_400_by_default(gateway: Gateway) -> None:
    response = ask(gateway, "small", history(10))
    assert response.status == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_truncate_oldest_keeps_system_and_newest_turns(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    messages = history(10)
    response = ask(gateway, "small", messages, context={"overflow": "truncate_oldest"})
    assert response.status == 200, response.body
    kept = sent(upstream)
    assert kept[0] == messages[0]
    assert kept[-1] == messages[-1]
    assert kept[-3:-1] == turn(9)  # the newest whole turn survived
    assert turn(0)[0] not in kept
    dropped = int(response.headers["x-chatgate-context-dropped-messages"])
    assert dropped == len(messages) - len(kept) and dropped % 2 == 0
    assert int(response.headers["x-chatgate-context-dropped-tokens"]) > 0
    assert "context" not in upstream.received[-1].body


def test_middle_out_keeps_the_first_turn(gateway: Gateway, upstream: FakeUpstream) -> None:
    messages = history(10)
    response = ask(gateway, "small", messages, context={"overflow": "middle_out"})
    assert response.status == 200
    kept = sent(upstream)
    assert kept[1:3] == turn(0) and kept[-3:-1] == turn(9)
    assert turn(5)[0] not in kept


def test_tool_calls_stay_with_their_results(gateway: Gateway, upstream: FakeUpstream) -> None:
    call: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    result: dict[str, Any] = {"role": "tool", "tool_call_id": "call_1", "content": "x " * 40}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "use the tool " + "y " * 60},
        call,
        result,
        *turn(1),
        *turn(2),
        {"role": "user", "content": "last"},
    ]
    response = ask(gateway, "small", messages, context={"overflow": "truncate_oldest"})
    assert response.status == 200
    kept = sent(upstream)
    assert (call in kept) == (result in kept)


def test_clamp_max_tokens(gateway: Gateway, upstream: FakeUpstream) -> None:
    response = ask(gateway, "forgiving", history(2), max_tokens=280)
    assert response.status == 200
    clamped = int(response.headers["x-chatgate-max-tokens-clamped"])
    assert 0 < clamped < 280
    assert upstream.received[-1].body["max_tokens"] == clamped


def test_model_default_policy_and_opting_back_into_errors(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    assert ask(gateway, "forgiving", history(10)).status == 200
    strict = ask(
        gateway, "forgiving", history(10), context={"overflow": "error", "clamp_max_tokens": False}
    )
    assert strict.status == 400


def test_a_newest_turn_that_cannot_fit_is_still_an_error(gateway: Gateway) -> None:
    huge = [{"role": "user", "content": "z " * 400}]
    response = ask(gateway, "small", huge, context={"overflow": "truncate_oldest"})
    assert response.status == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_bad_context_option_is_400(gateway: Gateway) -> None:
    response = ask(gateway, "small", history(1), context={"overflow": "squeeze"})
    assert response.status == 400
    assert response.json()["error"]["param"] == "context.overflow"
