"""chatgate in front of the engines that cannot run here — vLLM, llama.cpp's server, Ollama —
each a fake at the edge answering the endpoints its documentation describes
(``tests/fake_engines.py``), configured with only ``provider``, ``base_url`` and
``upstream_model``: prompts counted as the engine counts them, its published context window
enforced before it is asked, ``n`` and ``tool_choice`` as each engine honours them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_engines import FakeEngine
from tests.support import Gateway, post_json, start_gateway

KINDS = ["vllm", "llama.cpp", "ollama"]

PROMPTS: list[list[ChatCompletionMessageParam]] = [
    [{"role": "user", "content": "Name three colors."}],
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Why is the sky blue? " * 10},
    ],
    [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a fact about owls."},
    ],
]


def _config(engine: FakeEngine, extra: str = "") -> str:
    return (
        f"models:\n  - {{name: open, provider: openai_compat, base_url: '{engine.base_url}',"
        f" upstream_model: {engine.model}{extra}}}\n"
    )


@pytest.fixture(scope="module", params=KINDS)
def fronted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FakeEngine, Gateway]]:
    engine = FakeEngine(request.param).start()
    gateway = start_gateway(tmp_path_factory.mktemp("engines"), config=_config(engine))
    yield engine, gateway
    gateway.stop()
    engine.stop()


def _sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


@pytest.mark.parametrize("messages", PROMPTS)
def test_prompts_are_counted_as_the_engine_counts_them(
    fronted: tuple[FakeEngine, Gateway], messages: list[ChatCompletionMessageParam]
) -> None:
    engine, gateway = fronted
    reply = _sdk(gateway).chat.completions.create(model="open", messages=messages, max_tokens=1)
    assert reply.usage is not None
    ours = post_json(f"{gateway.url}/tokenize", {"model": "open", "messages": messages})
    theirs = reply.usage.prompt_tokens
    assert theirs == engine.count([dict(m) for m in messages])
    if engine.kind == "ollama":  # no tokenizer endpoint: o200k_base's texts, the engine's framing
        assert abs(ours.json()["count"] - theirs) <= 0.02 * theirs
    else:  # the engine's own count
        assert ours.json()["count"] == theirs


def test_the_engines_context_window_is_enforced_before_it_is_asked(
    fronted: tuple[FakeEngine, Gateway],
) -> None:
    """vLLM and llama.cpp publish the context they serve: a prompt over it is refused before
    the engine sees it, streamed or not. Ollama publishes none and truncates silently: the
    request reaches it (the README says to set `context_window` for it)."""
    engine, gateway = fronted
    before = len(engine.chats)
    words: list[ChatCompletionMessageParam] = [{"role": "user", "content": "word " * 300}]
    for stream in (False, True):
        if engine.kind == "ollama":
            reply = _sdk(gateway).chat.completions.create(
                model="open", messages=words, max_tokens=5, stream=stream
            )
            assert reply is not None
            continue
        with pytest.raises(openai.BadRequestError) as refused:
            _sdk(gateway).chat.completions.create(
                model="open", messages=words, max_tokens=5, stream=stream
            )
        assert refused.value.code == "context_length_exceeded"
        assert f"maximum context length is {engine.window} tokens" in refused.value.message
    assert len(engine.chats) - before == (2 if engine.kind == "ollama" else 0)


def test_n_as_the_engine_honours_it(fronted: tuple[FakeEngine, Gateway]) -> None:
    engine, gateway = fronted
    client = _sdk(gateway)
    before = len(engine.chats)
    reply = client.chat.completions.create(
        model="open", messages=PROMPTS[0], max_tokens=3, n=3, seed=7
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    sent = engine.chats[before:]
    if engine.kind == "vllm":  # honoured: asked once
        assert [b.get("n") for b in sent] == [3]
    else:  # one choice per request: asked three times, seeds apart
        assert sorted(b["seed"] for b in sent) == [7, 8, 9] and {b["n"] for b in sent} == {1}
    assert reply.usage is not None and reply.usage.completion_tokens == 9
    chunks = list(
        client.chat.completions.create(
            model="open",
            messages=PROMPTS[0],
            max_tokens=3,
            n=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finished = {c.index for chunk in chunks for c in chunk.choices if c.finish_reason}
    assert finished == {0, 1, 2}
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 9
    assert usage.prompt_tokens == (1 if engine.kind == "vllm" else 3) * engine.count(
        [dict(m) for m in PROMPTS[0]]
    )


TOOLS: Any = [
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}},
]


def test_tool_choice_the_engine_does_not_read_is_refused_naming_it(
    fronted: tuple[FakeEngine, Gateway],
) -> None:
    engine, gateway = fronted
    named: Any = {"type": "function", "function": {"name": "a"}}
    for choice in ("required", named):
        call: Any = {"model": "open", "messages": PROMPTS[0], "tools": TOOLS, "tool_choice": choice}
        if engine.kind == "ollama":
            with pytest.raises(openai.BadRequestError) as refused:
                _sdk(gateway).chat.completions.create(**call)
            assert refused.value.param == "tool_choice"
            assert "ollama" in refused.value.message
        else:
            assert _sdk(gateway).chat.completions.create(**call).choices
            assert engine.chats[-1]["tool_choice"] == choice


def test_configured_capabilities_override_the_engines(tmp_path: Path) -> None:
    engine = FakeEngine("ollama").start()
    config = _config(engine, ", capabilities: {tool_choice_named: true}")
    gateway = start_gateway(tmp_path, config=config)
    try:
        named: Any = {"type": "function", "function": {"name": "a"}}
        reply = _sdk(gateway).chat.completions.create(
            model="open", messages=PROMPTS[0], tools=TOOLS, tool_choice=named
        )
        assert reply.choices and engine.chats[-1]["tool_choice"] == named
    finally:
        gateway.stop()
        engine.stop()


def test_an_engine_that_reports_no_usage_is_counted_with_o200k_base(tmp_path: Path) -> None:
    """Its chat framing cannot be learned: chatgate says so once and counts as OpenAI does (no
    endless asking), and still meters its answers itself."""
    engine = FakeEngine("ollama", usage=False).start()
    gateway = start_gateway(tmp_path, config=_config(engine))
    try:
        ours = post_json(f"{gateway.url}/tokenize", {"model": "open", "messages": PROMPTS[0]})
        assert ours.json()["count"] == 11  # o200k_base with OpenAI's framing
        assert "reports no usage" in gateway.log()
        assert len(engine.chats) == 1  # asked once, not again and again
    finally:
        gateway.stop()
        engine.stop()
