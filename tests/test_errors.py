"""Bad input gets OpenAI's error body with the right status, before any stream starts."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support import Gateway, assert_openai_shape, post_json, raw

MODEL = "smollm2-135m-instruct"
OK_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def assert_error(
    response: Any, status: int, param: str | None = None, code: str | None = None
) -> Any:
    assert response.status == status, response.body
    body = response.json()
    assert_openai_shape(body, "ErrorResponse")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def post_bytes(gateway: Gateway, body: bytes, content_type: str = "application/json") -> Any:
    return raw(
        f"{gateway.base_url}/chat/completions",
        method="POST",
        body=body,
        headers={"Content-Type": content_type},
    )


def test_invalid_json_is_400(gateway: Gateway) -> None:
    error = assert_error(post_bytes(gateway, b'{"model": '), 400, code="invalid_json")
    assert error["type"] == "invalid_request_error"


def test_body_must_be_an_object(gateway: Gateway) -> None:
    assert_error(post_bytes(gateway, b"[1, 2]"), 400)


def test_wrong_content_type_is_400(gateway: Gateway) -> None:
    response = post_bytes(gateway, b"model=x", "application/x-www-form-urlencoded")
    assert_error(response, 400, code="invalid_content_type")


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"model": MODEL, "messages": OK_MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "messages": OK_MESSAGES, "temperature": 3}, "temperature"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": "hello"}, "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": OK_MESSAGES}, "model"),
        ({"model": MODEL, "messages": OK_MESSAGES, "n": 0}, "n"),
        ({"model": MODEL, "messages": OK_MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "messages": OK_MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": MODEL, "messages": OK_MESSAGES, "stream": "yes"}, "stream"),
        (
            {"model": MODEL, "messages": OK_MESSAGES, "logprobs": True, "top_logprobs": 21},
            "top_logprobs",
        ),
        ({"model": MODEL, "messages": OK_MESSAGES, "top_logprobs": 2}, "top_logprobs"),
        (
            {"model": MODEL, "messages": OK_MESSAGES, "response_format": {"type": "yaml"}},
            "response_format.type",
        ),
    ],
)
def test_schema_violations_are_400_naming_the_param(
    gateway: Gateway, payload: dict[str, Any], param: str
) -> None:
    response = post_json(f"{gateway.base_url}/chat/completions", payload)
    error = assert_error(response, 400, param=param)
    assert error["type"] == "invalid_request_error"


def test_sdk_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL, messages=OK_MESSAGES, logprobs=True, top_logprobs=21
        )


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_beyond_context_window_is_400_before_streaming(
    gateway: Gateway, stream: bool
) -> None:
    long_prompt = "word " * 9000
    response = post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": long_prompt}], "stream": stream},
    )
    error = assert_error(response, 400, code="context_length_exceeded")
    assert "8192" in error["message"]
    assert response.headers["content-type"].startswith("application/json")


def test_prompt_plus_max_tokens_beyond_window_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=OK_MESSAGES, max_tokens=8190)
    assert caught.value.code == "context_length_exceeded"


def test_unknown_route_and_method(gateway: Gateway) -> None:
    assert_error(raw(f"{gateway.base_url}/engines"), 404, code="unknown_url")
    assert_error(raw(f"{gateway.base_url}/chat/completions"), 405)
    # A CORS preflight where no origins are allowed is a refused method, in the same shape.
    preflight = raw(
        f"{gateway.base_url}/chat/completions",
        method="OPTIONS",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert_error(preflight, 405)
    assert_error(raw(f"{gateway.base_url}/files/file-x", method="PUT"), 405)
