"""Rate limits through the HTTP path: 429s with OpenAI's headers, token settlement, waiting for
capacity by priority, and the Redis backend's failure modes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.services import throwaway_redis
from tests.support import MASTER, Gateway, RawResponse, free_port, post_json, raw, start_gateway
from tests.test_auth import create_key

ASK = [{"role": "user", "content": "ping pong table"}]


def config_for(upstream: FakeUpstream, extra: str = "") -> str:
    return f"""
models:
  - name: echo
    provider: openai_compat
    base_url: {upstream.base_url}
    context_window: 100000
  - name: hold
    provider: openai_compat
    base_url: {upstream.base_url}
{extra}"""


@pytest.fixture(scope="module")
def limited(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path_factory.mktemp("limits"),
        config=config_for(upstream),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    yield server
    server.stop()


def ask(gateway: Gateway, key: str, model: str = "echo", **fields: Any) -> RawResponse:
    payload = {"model": model, "messages": ASK, "max_tokens": 10, **fields}
    headers = {"Authorization": f"Bearer {key}"}
    if "priority" in fields:
        headers["x-chatgate-priority"] = payload.pop("priority")
    return post_json(f"{gateway.base_url}/chat/completions", payload, **headers)


def test_requests_per_minute_gives_429_with_openai_headers(limited: Gateway) -> None:
    key = create_key(limited, limits={"rpm": 2})
    first = ask(limited, key["secret"])
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] in ("59s", "1m0s")
    assert ask(limited, key["secret"]).headers["x-ratelimit-remaining-requests"] == "0"
    refused = ask(limited, key["secret"])
    assert refused.status == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "requests" in error["message"]
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_are_reserved_then_settled_to_usage(limited: Gateway) -> None:
    key = create_key(limited, limits={"tpm": 1000})
    first = ask(limited, key["secret"], max_tokens=500)
    assert first.status == 200
    reserved = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
    prompt = post_json(
        f"{limited.url}/tokenize",
        {"model": "echo", "messages": ASK},
        Authorization=f"Bearer {key['secret']}",
    ).json()
    assert reserved == prompt["count"] + 500  # exact prompt tokens + max_tokens, up front
    used = first.json()["usage"]["total_tokens"]
    second = ask(limited, key["secret"], max_tokens=500)
    # the first request now counts what it used, not what it reserved
    assert second.status == 200
    remaining = int(second.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 1000 - used - (reserved)  # second's own reservation is the same size


def test_streams_settle_too(limited: Gateway) -> None:
    key = create_key(limited, limits={"tpm": 2000})
    stream = ask(limited, key["secret"], max_tokens=900, stream=True)
    assert stream.status == 200
    follow = ask(limited, key["secret"], max_tokens=900)
    assert follow.status == 200  # 900 + 900 + prompts would not fit unsettled


def test_a_request_larger_than_the_limit_is_refused_outright(limited: Gateway) -> None:
    key = create_key(limited, limits={"tpm": 100})
    refused = ask(limited, key["secret"], max_tokens=500)
    assert refused.status == 429
    assert "Request too large" in refused.json()["error"]["message"]


def test_model_and_global_limits_from_config(upstream: FakeUpstream, tmp_path: Path) -> None:
    extra = "limits:\n  global: {rpm: 1000}\n  models: {echo: {rpm: 1}}\n"
    gateway = start_gateway(tmp_path, config=config_for(upstream, extra))
    try:
        assert ask(gateway, "unused").status == 200
        refused = ask(gateway, "unused")
        assert refused.status == 429
        assert "model:echo" in refused.json()["error"]["message"]
    finally:
        gateway.stop()


def _limits(gateway: Gateway) -> dict[str, Any]:
    response = raw(f"{gateway.url}/admin/limits", headers={"Authorization": f"Bearer {MASTER}"})
    body: dict[str, Any] = response.json()
    return body


def _wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)  # polling the gateway's queue status, bounded


def test_waiting_for_capacity_goes_by_priority(limited: Gateway, upstream: FakeUpstream) -> None:
    key = create_key(limited, limits={"concurrent": 1}, queue_timeout=60, priority="critical")
    results: dict[str, RawResponse] = {}

    def send(name: str, model: str = "echo", priority: str | None = None) -> threading.Thread:
        fields: dict[str, Any] = {"messages": [{"role": "user", "content": name}]}
        if priority:
            fields["priority"] = priority

        def run() -> None:
            results[name] = ask(limited, key["secret"], model=model, **fields)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    threads = [send("holder", model="hold")]
    _wait_until(lambda: any(a.startswith("hold:holder") for a in upstream.arrivals))
    for name, expected in [("low", 1), ("normal", 1), ("critical", 1)]:
        threads.append(send(name, priority=name))
        _wait_until(
            lambda name=name, expected=expected: _limits(limited)["waiting"][name] == expected
        )
    assert _limits(limited)["waiting"] == {"critical": 1, "normal": 1, "low": 1}
    raw(f"http://127.0.0.1:{upstream.port}/control/release", method="POST", body=b"")
    for thread in threads:
        thread.join(60)
    order = [
        a.split(":", 1)[1]
        for a in upstream.arrivals
        if a.split(":", 1)[1] in ("low", "normal", "critical")
    ]
    assert order == ["critical", "normal", "low"]
    assert all(results[name].status == 200 for name in results)
    waited = results["low"].headers["server-timing"]
    assert "limit;dur=" in waited
    stats = _limits(limited)
    assert stats["waited_requests"] >= 3


def test_priority_is_capped_by_the_key(limited: Gateway, upstream: FakeUpstream) -> None:
    key = create_key(limited, limits={"rpm": 100})  # priority ceiling: normal
    response = ask(limited, key["secret"], priority="critical")
    assert response.status == 200  # asking is allowed; it is simply served as normal


@pytest.mark.parametrize(("mode", "status"), [("closed", 503), ("open", 200)])
def test_redis_unreachable_follows_the_operators_choice(
    upstream: FakeUpstream, tmp_path: Path, mode: str, status: int
) -> None:
    extra = (
        f"limits:\n  backend: redis\n  redis_url: redis://127.0.0.1:{free_port()}/0\n"
        f"  on_backend_error: {mode}\n  global: {{rpm: 100}}\n"
    )
    gateway = start_gateway(tmp_path, config=config_for(upstream, extra))
    try:
        response = ask(gateway, "unused")
        assert response.status == status, response.body
        if status == 503:
            assert response.json()["error"]["code"] == "rate_limiter_unavailable"
        assert f"fail-{mode}" in gateway.log_with(f"fail-{mode}")
    finally:
        gateway.stop()


@pytest.mark.parametrize(("mode", "status"), [("closed", 503), ("open", 200)])
def test_redis_stopped_while_serving_follows_the_operators_choice(
    upstream: FakeUpstream, tmp_path: Path, mode: str, status: int
) -> None:
    with throwaway_redis() as url:
        extra = (
            f"limits:\n  backend: redis\n  redis_url: {url}\n"
            f"  on_backend_error: {mode}\n  global: {{rpm: 100}}\n"
        )
        gateway = start_gateway(tmp_path, config=config_for(upstream, extra))
        assert ask(gateway, "unused").status == 200  # pooled connections to a live Redis
    try:  # that Redis is gone now
        response = ask(gateway, "unused")
        assert response.status == status, response.body
        if status == 503:
            assert response.json()["error"]["code"] == "rate_limiter_unavailable"
    finally:
        gateway.stop()


def test_limits_can_be_changed_on_a_key(limited: Gateway) -> None:
    key = create_key(limited, limits={"rpm": 1})
    assert ask(limited, key["secret"]).status == 200
    assert ask(limited, key["secret"]).status == 429
    update = raw(
        f"{limited.url}/admin/keys/{key['id']}",
        method="PATCH",
        body=json.dumps({"limits": {"rpm": 50}}).encode(),
        headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"},
    )
    assert update.status == 200 and update.json()["limits"] == {"rpm": 50}
    assert ask(limited, key["secret"]).status == 200
