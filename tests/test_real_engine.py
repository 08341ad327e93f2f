"""chatgate in front of a real inference engine — llama-cpp-python's own server with the
embedded model's GGUF — configured as a user would with only ``provider``, ``base_url`` and
``upstream_model``, called with the stock SDK: plain and streamed answers (the engine sends no
usage in streams: the gateway meters them), `n` (it answers one choice: the gateway asks for the
others), logprobs, stop sequences, a response format the engine
refuses (answered once, without its traceback, and the model stays up for everyone), context
overflow, the engine killed mid-stream, and the engine down and back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from chatgate.providers.local import default_model_path
from tests.engine import ENGINE_MODEL, Engine, start_engine
from tests.support import Gateway, free_port, post_json, start_gateway

pytestmark = pytest.mark.slow

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name three colors."}]


def _config(engine: Engine, extra: str = "") -> str:
    return (
        f"models:\n  - {{name: engine, provider: openai_compat, base_url: '{engine.base_url}',"
        f" upstream_model: {ENGINE_MODEL}{extra}}}\n"
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    server = start_engine(tmp_path_factory.mktemp("engine"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fronted(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(tmp_path_factory.mktemp("fronted"), config=_config(engine))
    yield server
    server.stop()


def _sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def _logged(gateway: Gateway, request_id: str) -> dict[str, Any]:
    line = next(
        line
        for line in gateway.log_with(request_id).splitlines()
        if request_id in line and '"event":"request"' in line
    )
    record: dict[str, Any] = json.loads(line[line.index("{") :])
    return record


def test_a_plain_answer_with_the_engines_usage(fronted: Gateway) -> None:
    answer = _sdk(fronted).chat.completions.with_raw_response.create(
        model="engine", messages=ASK, max_tokens=12
    )
    reply = answer.parse()
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens <= 12
    record = _logged(fronted, answer.headers["x-request-id"])
    assert record["prompt_tokens"] == reply.usage.prompt_tokens  # the engine's own count
    assert record["usage_source"] is None


@pytest.mark.parametrize("with_usage", [True, False])
def test_a_stream_is_metered_though_the_engine_sends_no_usage(
    fronted: Gateway, with_usage: bool
) -> None:
    options: Any = {"include_usage": True} if with_usage else openai.NOT_GIVEN
    stream = _sdk(fronted).chat.completions.with_raw_response.create(
        model="engine", messages=ASK, max_tokens=12, stream=True, stream_options=options
    )
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    record = _logged(fronted, stream.headers["x-request-id"])
    assert record["usage_source"] == "gateway"
    assert 0 < record["completion_tokens"] <= 14 and record["prompt_tokens"] > 0
    if with_usage:
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == record["completion_tokens"]
    else:
        assert all(chunk.usage is None for chunk in chunks)


def test_logprobs_and_stop_sequences(fronted: Gateway) -> None:
    client = _sdk(fronted)
    reply = client.chat.completions.create(
        model="engine", messages=ASK, max_tokens=5, logprobs=True, top_logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert len(logprobs.content[0].top_logprobs) == 2
    stopped = client.chat.completions.create(
        model="engine",
        messages=[{"role": "user", "content": "Count from one to ten, one number a line."}],
        max_tokens=40,
        stop=["\n"],
    )
    assert "\n" not in (stopped.choices[0].message.content or "")


def test_a_request_the_engine_refuses_is_answered_once_and_the_model_stays_up(
    fronted: Gateway, engine: Engine
) -> None:
    client = _sdk(fronted)
    schema: Any = {
        "type": "json_schema",
        "json_schema": {"name": "p", "schema": {"type": "object", "properties": {}}},
    }
    before = engine.log().count('"POST /v1/chat/completions HTTP/1.1"')
    for _ in range(3):  # three refusals, one engine call each
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(
                model="engine", messages=ASK, max_tokens=5, response_format=schema
            )
        message = refused.value.response.json()["error"]["message"]
        assert "could not process this request" in message
        assert "site-packages" not in message and "File " not in message
    assert _logged_posts(engine, before + 3) - before == 3  # no retries
    assert client.chat.completions.create(model="engine", messages=ASK, max_tokens=3).choices


PROMPTS: list[list[ChatCompletionMessageParam]] = [
    ASK,
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Why is the sky blue? " * 20},
    ],
    [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a fact about owls, über-briefly: ✓ 🦉"},
    ],
]
DEVELOPER: list[ChatCompletionMessageParam] = [
    # The engine refuses the `developer` role (422); chatgate sends it as `system`.
    {"role": "developer", "content": "Answer in French.\n\nBe concise."},
    {"role": "user", "content": "What is 2+2? Explain:\n1. first\n2. second"},
]


@pytest.fixture(scope="module")
def counted(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The engine fronted with the model's own GGUF as its tokenizer."""
    extra = f", tokenizer: '{default_model_path()}'"
    server = start_gateway(tmp_path_factory.mktemp("counted"), config=_config(engine, extra))
    yield server
    server.stop()


@pytest.mark.parametrize("messages", PROMPTS)
def test_prompts_are_counted_as_the_engine_counts_them(
    counted: Gateway, messages: list[ChatCompletionMessageParam]
) -> None:
    reply = _sdk(counted).chat.completions.create(model="engine", messages=messages, max_tokens=1)
    assert reply.usage is not None
    ours = post_json(f"{counted.url}/tokenize", {"model": "engine", "messages": messages})
    assert ours.status == 200
    assert ours.json()["count"] == reply.usage.prompt_tokens  # the engine's own count, exactly


def test_a_streams_tokens_are_counted_with_the_models_vocabulary(counted: Gateway) -> None:
    client = _sdk(counted)
    plain = client.chat.completions.create(
        model="engine", messages=ASK, max_tokens=12, temperature=0
    )
    stream = client.chat.completions.create(
        model="engine",
        messages=ASK,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage for chunk in stream if chunk.usage][-1]
    assert plain.usage is not None
    # The engine counted the plain answer; the gateway counted the same answer streamed.
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )


def test_n_choices_though_the_engine_answers_one(fronted: Gateway, engine: Engine) -> None:
    before = engine.log().count('"POST /v1/chat/completions HTTP/1.1"')
    reply = _sdk(fronted).chat.completions.create(
        model="engine", messages=ASK, max_tokens=6, n=3, temperature=1.0
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]  # emulated: it ignores `n`
    assert all(c.message.content for c in reply.choices)
    assert _logged_posts(engine, before + 3) - before == 3
    assert reply.usage is not None and reply.usage.completion_tokens <= 18


def test_a_prompt_over_the_engines_context_is_a_clear_400(fronted: Gateway, engine: Engine) -> None:
    words = "word " * (engine.n_ctx + 200)
    with pytest.raises(openai.BadRequestError) as refused:
        _sdk(fronted).chat.completions.create(
            model="engine", messages=[{"role": "user", "content": words}], max_tokens=5
        )
    assert refused.value.code == "context_length_exceeded"


def test_the_engine_killed_mid_stream_and_then_back(tmp_path: Path) -> None:
    engine = start_engine(tmp_path / "engine")
    config = _config(engine) + "routing: {retries: 1, breaker_failures: 2, breaker_cooldown: 1}\n"
    gateway = start_gateway(tmp_path / "gateway", config=config)
    client = _sdk(gateway)
    try:
        stream = client.chat.completions.create(
            model="engine",
            messages=[{"role": "user", "content": "Write a long story about the sea."}],
            max_tokens=400,
            stream=True,
        )
        first = next(iter(stream))
        assert first.choices
        engine.stop()  # killed while it streams
        with pytest.raises(openai.APIError):  # an SSE error event, not a truncated "answer"
            for _ in stream:
                pass
        with pytest.raises(openai.APIStatusError) as down:
            client.chat.completions.create(model="engine", messages=ASK, max_tokens=3)
        assert down.value.status_code in (502, 503)
        engine = start_engine(tmp_path / "engine", port=engine.port)  # back, on the same port
        deadline = time.monotonic() + 30
        while True:  # the breaker lets a probe through after its cooldown
            try:
                answer = client.chat.completions.create(model="engine", messages=ASK, max_tokens=3)
                break
            except openai.APIStatusError:
                assert time.monotonic() < deadline, "the model did not come back"
                time.sleep(0.2)  # polling for the cooldown, bounded
        assert answer.choices[0].message.content is not None
    finally:
        gateway.stop()
        engine.stop()


@pytest.fixture(scope="module")
def asked(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The engine fronted with `tokenizer: engine`: its own text tokenizer per request."""
    server = start_gateway(
        tmp_path_factory.mktemp("asked"), config=_config(engine, ", tokenizer: engine")
    )
    yield server
    server.stop()


def _counts(gateway: Gateway, messages: list[ChatCompletionMessageParam]) -> tuple[int, int]:
    """(chatgate's count, the engine's own) of a prompt."""
    reply = _sdk(gateway).chat.completions.create(model="engine", messages=messages, max_tokens=1)
    assert reply.usage is not None
    ours = post_json(f"{gateway.url}/tokenize", {"model": "engine", "messages": messages})
    assert ours.status == 200
    return ours.json()["count"], reply.usage.prompt_tokens


@pytest.mark.parametrize("messages", [*PROMPTS, DEVELOPER])
def test_with_the_minimal_config_the_engines_chat_framing_is_counted(
    fronted: Gateway, messages: list[ChatCompletionMessageParam]
) -> None:
    """No tokenizer configured: the chat framing the engine reported at start (its default
    system prompt included) plus the texts in o200k_base — not o200k_base alone, which counts
    "Name three colors." as 11 tokens to the engine's 34. The texts' counts differ from the
    model's vocabulary by up to ~9% on these prompts (numbers, newlines, emoji); exact counts
    take `tokenizer: model.gguf` or `tokenizer: engine`."""
    ours, theirs = _counts(fronted, messages)
    if messages is ASK:
        assert ours == theirs == 34
    assert abs(ours - theirs) <= 0.1 * theirs, (ours, theirs)


@pytest.mark.parametrize("messages", [*PROMPTS, DEVELOPER])
def test_with_tokenizer_engine_prompts_are_counted_as_the_engine_counts_them(
    asked: Gateway, messages: list[ChatCompletionMessageParam]
) -> None:
    ours, theirs = _counts(asked, messages)
    assert abs(ours - theirs) <= 0.02 * theirs, (ours, theirs)


def test_an_engine_serving_its_gguf_by_path_is_counted_with_that_file(tmp_path: Path) -> None:
    """Started without an alias, the engine's model id is the GGUF's path: on the same host,
    chatgate counts with that file, exactly."""
    engine = start_engine(tmp_path / "engine", alias=None)
    config = (
        f"models:\n  - {{name: engine, provider: openai_compat, base_url: '{engine.base_url}',"
        f" upstream_model: '{default_model_path()}'}}\n"
    )
    gateway = start_gateway(tmp_path / "gateway", config=config)
    try:
        for messages in [*PROMPTS, DEVELOPER]:
            ours, theirs = _counts(gateway, messages)
            assert ours == theirs
    finally:
        gateway.stop()
        engine.stop()


def _posts(engine: Engine) -> int:
    return engine.log().count('"POST /v1/chat/completions HTTP/1.1"')


def _logged_posts(engine: Engine, expected: int) -> int:
    """The engine's logged chat POSTs, once at least ``expected`` are logged (its access log is
    written as each answer starts: a line can trail the answer the client already has)."""
    deadline = time.monotonic() + 10
    while _posts(engine) < expected and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the engine's log, bounded
    return _posts(engine)


def test_a_streamed_prompt_over_the_engines_context_is_a_clear_400(
    engine: Engine, tmp_path: Path
) -> None:
    """The engine answers such a stream with a 200 and then closes it. chatgate asks it once
    more, for one token and unstreamed, which names the cause; from then on it knows the
    engine's context and refuses such prompts before the engine sees them."""
    gateway = start_gateway(tmp_path, config=_config(engine))
    client = _sdk(gateway)
    words: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "word " * (engine.n_ctx + 200)}
    ]
    try:
        before = _posts(engine)
        for calls in (2, 0):  # the stream and the question that named the cause; then none
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(
                    model="engine", messages=words, max_tokens=5, stream=True
                )
            assert refused.value.code == "context_length_exceeded"
            assert f"maximum context length is {engine.n_ctx} tokens" in refused.value.message
            # A plain request after it: once the engine has logged that one, every request
            # before it is logged too (the engine serves one at a time, and logs in order).
            assert client.chat.completions.create(
                model="engine", messages=ASK, max_tokens=2
            ).choices
            assert _logged_posts(engine, before + calls + 1) == before + calls + 1
            before += calls + 1
    finally:
        gateway.stop()


def test_n_streamed_though_the_engine_answers_one(fronted: Gateway, engine: Engine) -> None:
    before = _posts(engine)
    stream = _sdk(fronted).chat.completions.create(
        model="engine",
        messages=ASK,
        max_tokens=6,
        n=3,
        temperature=1.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = {0: "", 1: "", 2: ""}
    finished = set()
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1, 2} and all(texts.values())
    assert len({chunk.id for chunk in chunks}) == 1  # one completion, as OpenAI streams it
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert 3 <= usage.completion_tokens <= 18
    assert _logged_posts(engine, before + 3) - before == 3


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def test_tool_choice_required_with_one_tool_is_that_tools_call(fronted: Gateway) -> None:
    """The engine does not read "required"; with one tool it is exactly the named choice, which
    the engine forces with a grammar."""
    reply = _sdk(fronted).chat.completions.create(
        model="engine",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=40,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(calls[0].function.arguments)  # type: ignore[union-attr]


def test_tool_choice_required_with_several_tools_is_refused(fronted: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _sdk(fronted).chat.completions.create(
            model="engine",
            messages=ASK,
            tools=[WEATHER, TIME],
            tool_choice="required",
            max_tokens=5,
        )
    error = refused.value.response.json()["error"]
    assert error["param"] == "tool_choice" and "llama-cpp-python" in error["message"]


def test_json_object_answers_are_json(fronted: Gateway) -> None:
    reply = _sdk(fronted).chat.completions.create(
        model="engine",
        messages=[{"role": "user", "content": 'Reply with {"color": "<a color>"} only.'}],
        response_format={"type": "json_object"},
        max_tokens=300,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_an_engine_down_at_start_is_found_out_once_it_is_up(tmp_path: Path) -> None:
    """The gateway starts before its engine: it serves (counting with o200k_base meanwhile) and
    asks the engine again in the background until it answers; from then on it counts as the
    engine does."""
    port = free_port()
    config = (
        "models:\n  - {name: engine, provider: openai_compat,"
        f" base_url: 'http://127.0.0.1:{port}/v1', upstream_model: {ENGINE_MODEL}}}\n"
    )
    gateway = start_gateway(tmp_path / "gateway", config=config)
    engine: Engine | None = None
    try:
        ours = post_json(f"{gateway.url}/tokenize", {"model": "engine", "messages": ASK})
        assert ours.json()["count"] == 11  # o200k_base, OpenAI's framing: the engine is down
        engine = start_engine(tmp_path / "engine", port=port)
        deadline = time.monotonic() + 60
        while True:  # the gateway asks again after 1, 2, 4, 8... seconds
            ours = post_json(f"{gateway.url}/tokenize", {"model": "engine", "messages": ASK})
            if ours.json()["count"] == 34:
                break
            assert time.monotonic() < deadline, "the engine was not found out"
            time.sleep(0.2)  # polling for the background discovery, bounded
        assert "served by llama-cpp-python" in gateway.log()
    finally:
        gateway.stop()
        if engine is not None:
            engine.stop()
