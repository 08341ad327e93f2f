"""The openai_compat provider against a fake OpenAI-compatible upstream server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_upstream import FakeUpstream
from tests.support import (
    UPSTREAM_KEY,
    Gateway,
    assert_openai_shape,
    free_port,
    post_json,
    sse_events,
    start_gateway,
)

KEY = UPSTREAM_KEY
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "ping pong table"}]


def _model(name: str, upstream_model: str, base_url: str, extra: str = "") -> str:
    return f"""
  - name: {name}
    provider: openai_compat
    base_url: {base_url}
    upstream_model: {upstream_model}
    api_key_env: FAKE_UPSTREAM_KEY
    context_window: 128000{extra}"""


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = upstream.base_url
    models = [
        _model("gpt-test", "echo", base, "\n    aliases: [gpt-alias]"),
        _model("bad-request", "error-400", base),
        _model("broken", "error-500", base),
        _model("leaky", "error-401-echo-key", base),
        _model("masking", "masked-key", base),
        _model("sleepy", "slow", base, "\n    read_timeout: 0.5"),
        _model("dropper", "stream-drop", base),
        _model("erring", "stream-error", base),
        _model("htmlish", "not-json", base),
        _model("no-done", "stream-no-done", base),
        _model("cut-clean", "stream-cut-clean", base),
        _model("nowhere", "echo", f"http://127.0.0.1:{free_port()}/v1"),
        # by host name: aiohttp's default cookie jar ignores cookies from IP addresses
        _model("cookie-setter", "set-cookie", base.replace("127.0.0.1", "localhost")),
    ]
    # error translation is under test here: no retries, no breaker
    config = "routing: {retries: 0, breaker_failures: 1000}\nmodels:" + "".join(models) + "\n"
    server = start_gateway(
        tmp_path_factory.mktemp("proxy"), config=config, env={"FAKE_UPSTREAM_KEY": KEY}
    )
    yield server
    server.stop()


@pytest.fixture
def sdk(proxy: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="client-key", max_retries=0)


def test_completion_passes_through(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = sdk.chat.completions.create(
        model="gpt-alias", messages=ASK, extra_body={"top_k": 5, "x_vendor": {"a": 1}}
    )
    assert response.choices[0].message.content == "ping pong table"
    received = upstream.received[-1]
    assert received.body["model"] == "echo"
    assert received.body["top_k"] == 5  # unknown fields reach the upstream untouched
    assert received.body["x_vendor"] == {"a": 1}
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["x-request-id"]


def test_cookies_an_upstream_sets_never_reach_other_requests(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    sdk.chat.completions.create(model="cookie-setter", messages=ASK)  # tenant A gets a cookie
    sdk.chat.completions.create(
        model="cookie-setter", messages=[{"role": "user", "content": "tenant B"}]
    )
    assert "cookie" not in upstream.received[-1].headers


def test_completion_shape(proxy: Gateway) -> None:
    response = post_json(
        f"{proxy.base_url}/chat/completions", {"model": "gpt-test", "messages": ASK}
    )
    assert_openai_shape(response.json(), "CreateChatCompletionResponse")


def test_stream_passes_through_chunk_by_chunk(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-test", messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["ping ", "pong ", "table"]
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_models_listed(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list().data]
    assert ids[:2] == ["gpt-test", "bad-request"]


def test_upstream_client_error_keeps_status_and_fields(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="bad-request", messages=ASK)
    assert caught.value.body["message"] == "fake upstream error 400"  # type: ignore[index]
    assert caught.value.body["param"] == "messages"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_500_before_any_stream(proxy: Gateway, stream: bool) -> None:
    response = post_json(
        f"{proxy.base_url}/chat/completions",
        {"model": "broken", "messages": ASK, "stream": stream},
    )
    assert response.status == 500
    assert response.json()["error"]["type"] == "server_error"


def test_upstream_auth_failure_never_echoes_the_key(proxy: Gateway) -> None:
    response = post_json(f"{proxy.base_url}/chat/completions", {"model": "leaky", "messages": ASK})
    assert response.status == 502
    assert response.json()["error"]["code"] == "upstream_auth_failed"
    assert KEY not in response.body.decode()
    assert KEY not in proxy.log()


def test_a_masked_form_of_the_upstream_key_is_scrubbed_too(proxy: Gateway) -> None:
    response = post_json(
        f"{proxy.base_url}/chat/completions", {"model": "masking", "messages": ASK}
    )
    assert response.status == 400
    message = response.json()["error"]["message"]
    assert "not allowed here" in message  # the upstream's error is passed on...
    assert KEY[:8] not in message and KEY[-3:] not in message  # ...without the key's parts
    assert KEY[:8] not in proxy.log()


def test_read_timeout_is_504(proxy: Gateway) -> None:
    response = post_json(f"{proxy.base_url}/chat/completions", {"model": "sleepy", "messages": ASK})
    assert response.status == 504
    assert response.json()["error"]["type"] == "timeout"


def test_unreachable_upstream_is_502(proxy: Gateway) -> None:
    response = post_json(
        f"{proxy.base_url}/chat/completions", {"model": "nowhere", "messages": ASK}
    )
    assert response.status == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_non_json_upstream_body_is_502(proxy: Gateway) -> None:
    response = post_json(
        f"{proxy.base_url}/chat/completions", {"model": "htmlish", "messages": ASK}
    )
    assert response.status == 502


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("dropper", "upstream_disconnected"),
        ("cut-clean", "upstream_disconnected"),
        ("erring", None),
    ],
)
def test_failure_mid_stream_is_an_sse_error_then_done(
    proxy: Gateway, model: str, code: str | None
) -> None:
    response = post_json(
        f"{proxy.base_url}/chat/completions", {"model": model, "messages": ASK, "stream": True}
    )
    assert response.status == 200
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"


def test_sdk_sees_mid_stream_error(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="erring", messages=ASK, stream=True)
    with pytest.raises(openai.APIError, match="fake failure mid-stream"):
        list(stream)


def test_complete_stream_without_done_is_accepted(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="no-done", messages=ASK, stream=True)
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
