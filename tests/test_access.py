"""One access decision, on the model that runs: a key's or token's allow-list is checked after the
id the client sent is resolved (an alias cannot reach a model the list does not allow; an alias of
an allowed model is allowed), the same for batch lines, browser tokens and fallbacks; and a
token's ``max_tokens`` cap bounds the whole answer, every choice together."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, post_json, start_gateway
from tests.test_auth import create_key, sdk

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "which model am I talking to"}]


@pytest.fixture(scope="module")
def gated(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = f"provider: openai_compat, base_url: '{upstream.base_url}'"
    config = f"""
routing: {{retries: 0}}
batches: {{poll_interval: 0.05}}
models:
  - {{name: cheap, aliases: [cheap-alias], {base}, upstream_model: echo}}
  - {{name: premium, aliases: [cheap-turbo], {base}, upstream_model: echo,
      pricing: {{input: 30, output: 60}}}}
  - {{name: shaky, {base}, upstream_model: error-500, fallbacks: [premium, cheap]}}
"""
    server = start_gateway(
        tmp_path_factory.mktemp("access"), config=config, env={"CHATGATE_MASTER_KEY": MASTER}
    )
    yield server
    server.stop()


def _client(gateway: Gateway, allowed: list[str]) -> openai.OpenAI:
    return sdk(gateway, create_key(gateway, allowed_models=allowed)["secret"])


def _ask(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.with_raw_response.create(model=model, messages=ASK, max_tokens=5)


def test_an_alias_cannot_reach_a_model_the_allow_list_does_not_allow(gated: Gateway) -> None:
    client = _client(gated, ["cheap*"])
    assert _ask(client, "cheap").headers["x-chatgate-model"] == "cheap"
    assert _ask(client, "cheap-alias").headers["x-chatgate-model"] == "cheap"
    for model in ("premium", "cheap-turbo"):  # cheap-turbo is premium, whatever its name says
        with pytest.raises(openai.PermissionDeniedError) as refused:
            _ask(client, model)
        error = refused.value.response.json()["error"]
        assert (error["type"], error["param"]) == ("permission_error", "model")
        assert model in error["message"]


def test_an_alias_of_an_allowed_model_is_allowed(gated: Gateway) -> None:
    assert _ask(_client(gated, ["cheap"]), "cheap-alias").headers["x-chatgate-model"] == "cheap"
    # An allow-list may also name a model by one of its aliases, exactly.
    by_alias = _client(gated, ["cheap-turbo"])
    assert _ask(by_alias, "premium").headers["x-chatgate-model"] == "premium"


def test_models_lists_what_the_key_may_use_by_the_models_own_names(gated: Gateway) -> None:
    assert [m.id for m in _client(gated, ["cheap*"]).models.list().data] == ["cheap"]


def test_a_fallback_the_caller_may_not_use_is_skipped(gated: Gateway) -> None:
    answer = _ask(_client(gated, ["shaky", "cheap"]), "shaky")
    assert answer.headers["x-chatgate-model"] == "cheap"  # premium came first, and was skipped
    assert answer.headers["x-chatgate-fallback"] == "shaky"


def test_a_batch_line_is_decided_on_the_model_that_runs(gated: Gateway) -> None:
    client = _client(gated, ["cheap*"])
    lines = [
        {
            "custom_id": model,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": ASK, "max_tokens": 5},
        }
        for model in ("cheap-alias", "cheap-turbo")
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    source = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)  # polling the batch's status, bounded
    assert batch.output_file_id is not None and batch.error_file_id is not None
    (answered,) = map(json.loads, client.files.content(batch.output_file_id).text.splitlines())
    (refused,) = map(json.loads, client.files.content(batch.error_file_id).text.splitlines())
    assert (answered["custom_id"], refused["custom_id"]) == ("cheap-alias", "cheap-turbo")
    assert refused["response"]["status_code"] == 403


def _token(gateway: Gateway, **fields: Any) -> openai.OpenAI:
    key = create_key(gateway)
    minted = post_json(
        f"{gateway.base_url}/tokens", fields, Authorization=f"Bearer {key['secret']}"
    )
    assert minted.status == 200, minted.body
    return openai.OpenAI(base_url=gateway.base_url, api_key=minted.json()["token"], max_retries=0)


def test_a_browser_token_is_decided_on_the_model_that_runs(gated: Gateway) -> None:
    browser = _token(gated, models=["cheap*"])
    assert _ask(browser, "cheap-alias").headers["x-chatgate-model"] == "cheap"
    with pytest.raises(openai.PermissionDeniedError):
        _ask(browser, "cheap-turbo")


def test_a_tokens_max_tokens_cap_bounds_every_choice_together(
    gated: Gateway, upstream: FakeUpstream
) -> None:
    browser = _token(gated, max_tokens=4)
    with pytest.raises(openai.PermissionDeniedError) as many:
        browser.chat.completions.create(model="cheap", messages=ASK, n=128)
    assert many.value.response.json()["error"]["param"] == "n"
    with pytest.raises(openai.PermissionDeniedError) as over:
        browser.chat.completions.create(model="cheap", messages=ASK, n=3, max_tokens=2)
    assert over.value.response.json()["error"]["param"] == "max_tokens"
    for asked in (2, None):  # None: no max_tokens, the cap's 4 shared by 2 choices
        seen = len(upstream.received)
        limit: Any = openai.NOT_GIVEN if asked is None else asked
        browser.chat.completions.create(model="cheap", messages=ASK, n=2, max_tokens=limit)
        sent = upstream.received[seen].body  # (the fake answers one choice: chatgate asks again)
        assert (sent["n"], sent["max_tokens"]) == (2, 2)
