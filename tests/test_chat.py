"""Chat semantics on the embedded model, through the official SDK."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from llama_cpp import Llama
from openai.types.chat import ChatCompletionMessageParam

from tests.support import Gateway, assert_openai_shape, post_json

MODEL = "smollm2-135m-instruct"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name three colors."}]


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", HELLO)
    kwargs.setdefault("max_tokens", 16)
    return client.chat.completions.create(**kwargs)


def test_completion_has_openai_shape(gateway: Gateway) -> None:
    response = post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": MODEL, "messages": HELLO, "max_tokens": 8},
    )
    assert response.status == 200
    body = response.json()
    assert_openai_shape(body, "CreateChatCompletionResponse")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["refusal"] is None
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_all_roles_and_multi_turn_history(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        {"role": "assistant", "content": "It is 18C and sunny."},
        {"role": "user", "content": "And tomorrow?"},
    ]
    response = chat(client, messages=messages, max_tokens=8)
    assert response.choices[0].message.content
    assert response.usage.prompt_tokens > 40


def test_tool_message_needs_tool_call_id(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, messages=[{"role": "tool", "content": "x"}])
    assert caught.value.body["param"] == "messages[0].tool_call_id"  # type: ignore[index]


def test_text_parts_equal_string_content(client: openai.OpenAI) -> None:
    as_string = chat(client, temperature=0, messages=[{"role": "user", "content": "Hi there!"}])
    parts = [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there!"}]
    as_parts = chat(client, temperature=0, messages=[{"role": "user", "content": parts}])
    assert as_parts.choices[0].message.content == as_string.choices[0].message.content
    assert as_parts.usage.prompt_tokens == as_string.usage.prompt_tokens


def test_unknown_keys_inside_a_message_are_tolerated(gateway: Gateway) -> None:
    message = {"role": "user", "content": "Hi", "x_trace": {"span": 1}, "name": "ann"}
    response = post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": MODEL, "messages": [message], "max_tokens": 4},
    )
    assert response.status == 200, response.body


def test_image_parts_are_refused_by_the_text_model(client: openai.OpenAI) -> None:
    parts = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, messages=[{"role": "user", "content": parts}])
    assert caught.value.code == "unsupported_parameter"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_cap_gives_finish_reason_length(client: openai.OpenAI, field: str) -> None:
    response = chat(
        client,
        **{"max_tokens": None, field: 5},
        logit_bias={"2": -100},  # forbid end-of-turn so the cap is what stops it
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5


def test_natural_end_gives_finish_reason_stop(client: openai.OpenAI) -> None:
    response = chat(
        client, messages=[{"role": "user", "content": "Hello!"}], max_tokens=64, temperature=0
    )
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens < 64


def test_n_gives_indexed_choices(client: openai.OpenAI) -> None:
    response = chat(client, n=3, max_tokens=6, seed=7, temperature=1.0)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert all(c.message.content for c in response.choices)
    assert response.usage.completion_tokens <= 18
    assert len({c.message.content for c in response.choices}) > 1  # seeded per choice


@pytest.mark.parametrize("as_list", [False, True])
def test_stop_sequences_cut_before_the_stop_text(client: openai.OpenAI, as_list: bool) -> None:
    prompt = [{"role": "user", "content": "Tell me about the sea in two sentences."}]
    free = chat(client, messages=prompt, max_tokens=40, temperature=0).choices[0].message.content
    words = free.split()
    stop_word = words[len(words) // 2]
    cut = free.index(stop_word)
    stop: Any = [stop_word, "zzqx"] if as_list else stop_word
    response = chat(client, messages=prompt, max_tokens=40, temperature=0, stop=stop)
    assert response.choices[0].message.content == free[:cut]
    assert stop_word not in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"


def test_same_seed_same_output_at_temperature_above_zero(client: openai.OpenAI) -> None:
    first = chat(client, seed=1234, temperature=1.2, max_tokens=24)
    second = chat(client, seed=1234, temperature=1.2, max_tokens=24)
    assert first.choices[0].message.content == second.choices[0].message.content
    others = {
        chat(client, seed=s, temperature=1.2, max_tokens=24).choices[0].message.content
        for s in (1, 2, 3)
    }
    assert len(others | {first.choices[0].message.content}) > 1


def test_top_p_changes_sampling(client: openai.OpenAI) -> None:
    greedy = chat(client, temperature=0, max_tokens=20).choices[0].message.content
    tiny_p = chat(client, top_p=0.0001, temperature=1.5, seed=5, max_tokens=20)
    assert tiny_p.choices[0].message.content == greedy  # only the top token survives


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_penalties_change_the_output(client: openai.OpenAI, penalty: str) -> None:
    prompt = [{"role": "user", "content": "List ten animals."}]  # an answer that repeats tokens
    plain = chat(client, messages=prompt, temperature=0, max_tokens=30)
    penalised = chat(client, messages=prompt, temperature=0, max_tokens=30, **{penalty: 2.0})
    assert penalised.choices[0].message.content != plain.choices[0].message.content


def test_logit_bias_forces_a_token(client: openai.OpenAI, vocab: Llama) -> None:
    (token,) = vocab.tokenize(b" banana", add_bos=False)
    response = chat(client, temperature=0, max_tokens=4, logit_bias={str(token): 100})
    assert response.choices[0].message.content == " banana" * 4


def test_logit_bias_outside_vocabulary_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, logit_bias={"99999999": 5})
    assert caught.value.body["param"] == "logit_bias"  # type: ignore[index]


def test_logprobs_with_top_logprobs(client: openai.OpenAI) -> None:
    response = chat(client, logprobs=True, top_logprobs=3, max_tokens=12, temperature=0)
    choice = response.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == response.usage.completion_tokens
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
        assert entry.logprob == entry.top_logprobs[0].logprob  # greedy picks the likeliest


def test_logprobs_zero_top_logprobs(client: openai.OpenAI) -> None:
    response = chat(client, logprobs=True, top_logprobs=0, max_tokens=4)
    assert all(e.top_logprobs == [] for e in response.choices[0].logprobs.content)


def test_json_object_output_parses(client: openai.OpenAI) -> None:
    response = chat(
        client,
        messages=[{"role": "user", "content": "Give me a JSON with name and age"}],
        response_format={"type": "json_object"},
        max_tokens=80,
        temperature=0,
    )
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer"},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response = chat(
        client,
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
        max_tokens=60,
        temperature=0,
    )
    jsonschema.validate(json.loads(response.choices[0].message.content), schema)


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
WEATHER_ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"}
]


@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_weather"}}],
)
def test_forced_tool_call(client: openai.OpenAI, tool_choice: Any) -> None:
    response = chat(
        client,
        messages=WEATHER_ASK,
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,
        max_tokens=40,
        temperature=0,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])


BOUNDED_TOOL: dict[str, Any] = {
    # LangChain's standard tool-calling test: the argument must lie strictly inside ±1000.
    "type": "function",
    "function": {
        "name": "magic_function",
        "description": "Applies a magic function to an input.",
        "parameters": {
            "type": "object",
            "properties": {
                "input": {"type": "integer", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000},
                "count": {"type": "integer", "minimum": 3, "maximum": 12},
            },
            "required": ["input", "count"],
        },
    },
}


@pytest.mark.parametrize("question", ["What is magic_function(3)?", "Call it with a huge number."])
def test_integer_bounds_hold_in_tool_arguments(client: openai.OpenAI, question: str) -> None:
    """The grammar enforces numeric bounds (llama-cpp-python's schema converter drops them: the
    model answered {"input": 1000000000000000})."""
    response = chat(
        client,
        messages=[{"role": "user", "content": question}],
        tools=[BOUNDED_TOOL],
        tool_choice="required",
        max_tokens=40,
        temperature=0,
    )
    (call,) = response.choices[0].message.tool_calls
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, BOUNDED_TOOL["function"]["parameters"])


def test_logprobs_when_the_model_answers_in_text_though_tools_were_offered(
    client: openai.OpenAI,
) -> None:
    ask: Any = {
        "messages": [{"role": "user", "content": "Write a haiku about the sea."}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "logprobs": True,
        "max_tokens": 20,
        "temperature": 0,
    }
    choice = chat(client, **ask).choices[0]
    assert choice.message.tool_calls is None and choice.message.content
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(e.token for e in choice.logprobs.content) == choice.message.content
    streamed = [
        entry
        for chunk in client.chat.completions.create(model=MODEL, stream=True, **ask)
        for c in chunk.choices
        for entry in (c.logprobs.content or [] if c.logprobs else [])
    ]
    assert "".join(e.token for e in streamed) == choice.message.content


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    response = chat(client, messages=WEATHER_ASK, tools=[WEATHER_TOOL], tool_choice="none")
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].message.content


def test_tool_choice_naming_an_unknown_tool_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(
            client,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert caught.value.body["param"] == "tool_choice"  # type: ignore[index]


def test_user_field_is_accepted(client: openai.OpenAI) -> None:
    assert chat(client, user="user-42", max_tokens=2).choices[0].message.content is not None


def test_usage_counts_with_the_model_tokenizer(client: openai.OpenAI, vocab: Llama) -> None:
    short = chat(client, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    text = "Hi" + " apple" * 50
    longer = chat(client, messages=[{"role": "user", "content": text}], max_tokens=1)
    extra = len(vocab.tokenize(text.encode(), add_bos=False)) - len(
        vocab.tokenize(b"Hi", add_bos=False)
    )
    assert longer.usage.prompt_tokens - short.usage.prompt_tokens == extra
