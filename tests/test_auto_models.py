"""Routing for cost: an `auto` model id picks a real model by task, prompt size or key default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, RawResponse, post_json, raw, start_gateway
from tests.test_auth import create_key


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fake = FakeUpstream()
    fake.start()
    config = f"""
models:
  - {{name: small, provider: openai_compat, base_url: "{fake.base_url}"}}
  - {{name: medium, provider: openai_compat, base_url: "{fake.base_url}"}}
  - {{name: large, provider: openai_compat, base_url: "{fake.base_url}"}}
auto_models:
  - name: auto
    default: large
    rules:
      - {{task: [classify, summarize], model: small}}
      - {{max_prompt_tokens: 50, model: medium}}
"""
    server = start_gateway(
        tmp_path_factory.mktemp("auto"), config=config, env={"CHATGATE_MASTER_KEY": MASTER}
    )
    yield server
    server.stop()
    fake.stop()


def ask(gateway: Gateway, text: str, key: str = MASTER, task: str | None = None) -> RawResponse:
    headers = {"Authorization": f"Bearer {key}"}
    if task:
        headers["x-chatgate-task"] = task
    body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    return post_json(f"{gateway.base_url}/chat/completions", body, **headers)


def test_task_rule(gateway: Gateway) -> None:
    response = ask(gateway, "long " * 200, task="summarize")
    assert response.headers["x-chatgate-auto-model"] == "small"
    assert response.headers["x-chatgate-model"] == "small"


def test_prompt_size_rule(gateway: Gateway) -> None:
    assert ask(gateway, "short").headers["x-chatgate-auto-model"] == "medium"
    assert ask(gateway, "long " * 200).headers["x-chatgate-auto-model"] == "large"


def test_key_default(gateway: Gateway) -> None:
    key = create_key(gateway, metadata={"default_model": "small"})
    response = ask(gateway, "long " * 200, key=key["secret"])
    assert response.headers["x-chatgate-auto-model"] == "small"


def test_scope_applies_to_the_chosen_model(gateway: Gateway) -> None:
    key = create_key(gateway, allowed_models=["auto", "medium"])
    assert ask(gateway, "short", key=key["secret"]).status == 200
    assert ask(gateway, "long " * 200, key=key["secret"]).status == 403


def test_auto_is_listed(gateway: Gateway) -> None:
    listed = raw(f"{gateway.base_url}/models", headers={"Authorization": f"Bearer {MASTER}"})
    assert "auto" in [m["id"] for m in listed.json()["data"]]
