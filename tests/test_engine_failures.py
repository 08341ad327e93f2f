"""An upstream engine's failures, classified: a request the engine always refuses (a 4xx, or a
500 carrying its validation error) is answered once — not retried, not counted against the
deployment, so other callers are unaffected — and without the engine's internals; errors with no
message name the upstream's status; an open circuit says when to retry; each request's id goes
upstream as the client's own id or a UUID, in a header the operator can rename or turn off; and a
stream whose upstream sends no usage is metered by the gateway all the same."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, post_json, start_gateway
from tests.test_cli import cli

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
SCHEMA: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {"name": "x", "schema": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def engine(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = f"provider: openai_compat, base_url: '{upstream.base_url}'"
    config = f"""
routing: {{retries: 2, breaker_failures: 2, breaker_cooldown: 30, backoff_initial: 0.01}}
models:
  - {{name: picky, {base}, upstream_model: picky}}
  - {{name: empty, {base}, upstream_model: empty-400}}
  - {{name: quiet, {base}, upstream_model: echo, request_id_header: null}}
  - {{name: renamed, {base}, upstream_model: echo, request_id_header: X-Correlation-Id}}
  - {{name: down, {base}, upstream_model: error-503}}
  - {{name: unmetered, {base}, upstream_model: no-usage, pricing: {{input: 10, output: 20}}}}
"""
    server = start_gateway(tmp_path_factory.mktemp("engine"), config=config)
    yield server
    server.stop()


def _sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def test_a_request_the_engine_always_refuses_is_answered_once_and_spares_others(
    engine: Gateway, upstream: FakeUpstream
) -> None:
    client = _sdk(engine)
    before = len(upstream.times.get("picky", []))
    for _ in range(3):  # more than breaker_failures
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="picky", messages=ASK, response_format=SCHEMA)
        message = failed.value.response.json()["error"]["message"]
        assert "could not process this request" in message
        assert "Traceback" not in message and "/srv/engine" not in message  # no internals
    assert len(upstream.times["picky"]) - before == 3  # each answered once: no retries
    # Another caller of the same deployment: the circuit stayed closed.
    answer = client.chat.completions.create(model="picky", messages=ASK)
    assert answer.choices[0].message.content == "hello there"
    assert "ValueError: unsupported schema keyword" in engine.log()  # in full, on the server


def test_an_error_without_a_message_names_the_upstreams_status(engine: Gateway) -> None:
    response = post_json(f"{engine.base_url}/chat/completions", {"model": "empty", "messages": ASK})
    assert response.status == 400
    assert response.json()["error"]["message"].startswith("The upstream for `empty` answered 400")


def test_an_open_circuit_says_when_to_retry(engine: Gateway) -> None:
    statuses = [
        post_json(f"{engine.base_url}/chat/completions", {"model": "down", "messages": ASK})
        for _ in range(3)
    ]
    assert [r.status for r in statuses[:2]] == [503, 503]  # the upstream's own 503s
    opened = statuses[2]
    assert opened.json()["error"]["code"] == "circuit_open"
    assert 1 <= int(opened.headers["retry-after"]) <= 30


def _sent_id(upstream: FakeUpstream, header: str) -> str | None:
    return upstream.received[-1].headers.get(header.lower())


def test_the_request_id_goes_upstream_as_a_uuid_or_the_clients_own(
    engine: Gateway, upstream: FakeUpstream
) -> None:
    client = _sdk(engine)
    answer = client.chat.completions.with_raw_response.create(model="picky", messages=ASK)
    sent = _sent_id(upstream, "x-request-id")
    assert sent is not None and uuid.UUID(sent).version == 4
    assert uuid.UUID(sent).hex[:12] == answer.headers["x-request-id"].removeprefix("req_")[:12]
    client.chat.completions.create(
        model="picky", messages=ASK, extra_headers={"x-request-id": "client-trace-7"}
    )
    assert _sent_id(upstream, "x-request-id") == "client-trace-7"
    client.chat.completions.create(model="quiet", messages=ASK)
    assert _sent_id(upstream, "x-request-id") is None
    client.chat.completions.create(model="renamed", messages=ASK)
    assert _sent_id(upstream, "x-correlation-id") is not None


def test_a_header_that_would_be_overridden_is_a_config_error(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  - {name: m, provider: openai_compat, base_url: 'http://127.0.0.1:9/v1',"
        " headers: {x-request-id: fixed}}\n"
    )
    result = cli(tmp_path, "serve", "--config", str(config))
    assert result.returncode == 1
    assert "request_id_header: null" in result.stderr


def _logged(gateway: Gateway, request_id: str) -> dict[str, Any]:
    line = next(
        line
        for line in gateway.log_with(request_id).splitlines()
        if request_id in line and '"event":"request"' in line
    )
    record: dict[str, Any] = json.loads(line[line.index("{") :])
    return record


def test_a_stream_without_usage_is_metered_by_the_gateway(engine: Gateway) -> None:
    client = _sdk(engine)
    stream = client.chat.completions.with_raw_response.create(
        model="unmetered",
        messages=ASK,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there"
    usage = chunks[-1].usage  # the client asked for usage: it gets it, counted by the gateway
    assert usage is not None and not chunks[-1].choices
    assert usage.completion_tokens == 2  # "hello", " there"
    assert usage.prompt_tokens > 0
    record = _logged(engine, stream.headers["x-request-id"])
    assert record["usage_source"] == "gateway"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert record["cost"] == pytest.approx((usage.prompt_tokens * 10 + 2 * 20) / 1e6)
    plain = client.chat.completions.with_raw_response.create(
        model="unmetered", messages=ASK, stream=True
    )
    assert all(chunk.usage is None for chunk in plain.parse())  # not asked for: not sent
    assert _logged(engine, plain.headers["x-request-id"])["completion_tokens"] == 2
