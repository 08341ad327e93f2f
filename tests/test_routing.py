"""Upstream resilience against a fake upstream injecting faults: retries with backoff (honouring
retry-after), fallbacks in order, time-to-first-token budgets, circuit breakers, load balancing
and graceful degradation."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tenacity import RetryCallState

from chatgate.config import RoutingConfig
from chatgate.gateway.registry import ModelRegistry
from chatgate.gateway.routing import Router
from chatgate.protocol import UpstreamError
from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, RawResponse, post_json, raw, sse_events, start_gateway

ASK = [{"role": "user", "content": "ping pong table"}]


def model(name: str, upstream_model: str, base: str, extra: str = "") -> str:
    text = f"""
  - name: {name}
    provider: openai_compat
    base_url: {base}
    upstream_model: {upstream_model}"""
    for line in extra.strip().splitlines():
        text += f"\n    {line.strip()}"
    return text


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = upstream.base_url
    models = [
        model("retry", "flaky-2-retry", base),
        model("throttled", "throttle-1-throttled", base),
        model("resetting", "reset-1-resetting", base),
        model("hopeless", "flaky-1000-hopeless", base),
        model("primary", "flaky-1000-primary", base, "fallbacks: [secondary, last-resort]"),
        model("secondary", "error-500", base),
        model("last-resort", "echo", base),
        model("sluggish", "sleep-3-sluggish", base, "ttft_budget: 0.5\nfallbacks: [last-resort]"),
        model("dropper", "stream-drop", base),
        model(
            "fragile",
            "flaky-1000-fragile",
            base,
            "degraded_response: {content: 'We are busy; try again soon.'}",
        ),
        model("timing-out", "sleep-2-timeout", base, "read_timeout: 0.3"),
        model("split", "split-a", base, "weight: 3"),
        model("split", "split-b", base, "weight: 1"),
    ]
    config = (
        "routing: {retries: 2, backoff_initial: 0.05, backoff_max: 0.2, strategy: weighted, "
        "breaker_failures: 1000}\nmodels:" + "".join(models) + "\n"
    )
    server = start_gateway(
        tmp_path_factory.mktemp("routing"), config=config, env={"CHATGATE_MASTER_KEY": MASTER}
    )
    yield server
    server.stop()


def ask(gateway: Gateway, name: str, **fields: Any) -> RawResponse:
    body = {"model": name, "messages": ASK, **fields}
    return post_json(f"{gateway.base_url}/chat/completions", body, Authorization=f"Bearer {MASTER}")


def test_transient_failures_are_retried(gateway: Gateway, upstream: FakeUpstream) -> None:
    response = ask(gateway, "retry")
    assert response.status == 200, response.body
    assert response.json()["choices"][0]["message"]["content"] == "ping pong table"
    assert len(upstream.times["flaky-2-retry"]) == 3  # two 503s, then success
    assert response.headers["x-chatgate-model"] == "retry"


def test_backoff_is_full_jitter_under_its_cap() -> None:
    """The waits themselves (not timed through HTTP, which a busy machine stretches): random
    in [0, ceiling], the ceiling doubling from `backoff_initial` up to `backoff_max`; an
    upstream's `retry-after` wins, up to four times the cap."""
    config = RoutingConfig(retries=2, backoff_initial=0.05, backoff_max=0.2)
    router = Router(ModelRegistry([]), config)
    for attempt in range(1, 8):
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        waits = [router._wait(state) for _ in range(200)]
        ceiling = min(0.2, 0.05 * 2 ** (attempt - 1))
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # jittered across the range, not a fixed step
    throttled = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    throttled.set_exception(
        (UpstreamError, UpstreamError("slow down", status=429, retry_after=0.5), None)
    )
    assert router._wait(throttled) == 0.5
    throttled.set_exception(
        (UpstreamError, UpstreamError("slow down", status=429, retry_after=60), None)
    )
    assert router._wait(throttled) == 0.8  # four times backoff_max


def test_retry_after_is_honoured(gateway: Gateway, upstream: FakeUpstream) -> None:
    assert ask(gateway, "throttled").status == 200
    first, second = upstream.times["throttle-1-throttled"]
    assert second - first >= 0.3  # the upstream's retry-after-ms, above the 0.2 s backoff cap


def test_connection_resets_are_retried(gateway: Gateway, upstream: FakeUpstream) -> None:
    assert ask(gateway, "resetting").status == 200
    assert len(upstream.times["reset-1-resetting"]) == 2


def test_timeouts_are_retried_then_reported(gateway: Gateway, upstream: FakeUpstream) -> None:
    response = ask(gateway, "timing-out")
    assert response.status == 504
    assert response.json()["error"]["type"] == "timeout"
    assert len(upstream.times["sleep-2-timeout"]) == 3


def test_retries_give_up_with_the_upstream_error(gateway: Gateway, upstream: FakeUpstream) -> None:
    response = ask(gateway, "hopeless")
    assert response.status == 503
    assert len(upstream.times["flaky-1000-hopeless"]) == 3  # 1 + retries


@pytest.mark.parametrize("stream", [False, True])
def test_fallbacks_in_order(gateway: Gateway, upstream: FakeUpstream, stream: bool) -> None:
    upstream.arrivals.clear()
    response = ask(gateway, "primary", stream=stream)
    assert response.status == 200, response.body
    assert response.headers["x-chatgate-model"] == "last-resort"
    assert response.headers["x-chatgate-fallback"] == "primary"
    order = [a.split(":")[0] for a in upstream.arrivals]
    assert order == ["flaky-1000-primary"] * 3 + ["error-500"] * 3 + ["echo"]


def test_slow_first_token_falls_back(gateway: Gateway) -> None:
    response = ask(gateway, "sluggish", stream=True)
    assert response.status == 200
    # Served by the fallback: the sluggish upstream (first token after 3 s) was given up on
    # at its `ttft_budget`, not waited for (it would have answered itself).
    assert response.headers["x-chatgate-model"] == "last-resort"


def test_no_retry_once_a_stream_reached_the_client(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.arrivals.clear()
    response = ask(gateway, "dropper", stream=True)
    assert response.status == 200
    events = sse_events(response.body)
    assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])
    assert [a.split(":")[0] for a in upstream.arrivals] == ["stream-drop"]


@pytest.mark.parametrize("stream", [False, True])
def test_degraded_response_when_everything_failed(gateway: Gateway, stream: bool) -> None:
    response = ask(gateway, "fragile", stream=stream)
    assert response.status == 200
    assert response.headers["x-chatgate-degraded"] == "failure"
    if stream:
        chunks = [json.loads(e) for e in sse_events(response.body)[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert text == "We are busy; try again soon."


def test_weighted_load_balancing(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.arrivals.clear()
    for _ in range(120):
        assert ask(gateway, "split", max_tokens=1).status == 200
    counts = Counter(a.split(":")[0] for a in upstream.arrivals)
    share = counts["split-a"] / (counts["split-a"] + counts["split-b"])
    assert 0.6 <= share <= 0.9, counts  # weights 3:1


def _routing(gateway: Gateway, name: str) -> dict[str, Any]:
    status = raw(f"{gateway.url}/admin/routing", headers={"Authorization": f"Bearer {MASTER}"})
    return next(m for m in status.json()["models"] if m["model"] == name)


def test_circuit_breaker_opens_and_probes(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = (
        "routing: {retries: 0, breaker_failures: 2, breaker_cooldown: 1}\nmodels:"
        + model("brittle", "flaky-1000-brittle", upstream.base_url)
        + "\n"
    )
    gateway = start_gateway(tmp_path, config=config, env={"CHATGATE_MASTER_KEY": MASTER})
    try:
        assert [ask(gateway, "brittle").status for _ in range(2)] == [503, 503]
        assert _routing(gateway, "brittle")["deployments"][0]["breaker"] == "open"
        metrics = raw(
            f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {MASTER}"}
        ).body.decode()
        assert 'chatgate_breaker_open{deployment="0",model="brittle"} 1.0' in metrics
        assert 'chatgate_upstream_errors_total{model="brittle",status="503"} 2.0' in metrics
        refused = ask(gateway, "brittle")
        assert refused.status == 503 and refused.json()["error"]["code"] == "circuit_open"
        assert len(upstream.times["flaky-1000-brittle"]) == 2  # the open circuit sent nothing
        deadline = time.monotonic() + 10
        while _routing(gateway, "brittle")["deployments"][0]["breaker"] != "half_open":
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling for the cooldown to pass, bounded
        assert ask(gateway, "brittle").status == 503  # the probe reached the upstream and failed
        assert len(upstream.times["flaky-1000-brittle"]) == 3
        assert _routing(gateway, "brittle")["deployments"][0]["breaker"] == "open"
    finally:
        gateway.stop()


def test_least_busy_spreads_concurrent_requests(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = (
        "routing: {strategy: least_busy}\nmodels:"
        + model("pair", "sleep-1-left", upstream.base_url)
        + model("pair", "sleep-1-right", upstream.base_url)
        + "\n"
    )
    gateway = start_gateway(tmp_path, config=config)
    try:
        threads = [threading.Thread(target=ask, args=(gateway, "pair")) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(upstream.times["sleep-1-left"]) == 2
        assert len(upstream.times["sleep-1-right"]) == 2
    finally:
        gateway.stop()


def test_degraded_response_on_quota(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = (
        "limits: {models: {calm: {rpm: 1}}}\nmodels:"
        + model("calm", "echo", upstream.base_url, "degraded_response: {content: 'Later, please.'}")
        + "\n"
    )
    gateway = start_gateway(tmp_path, config=config)
    try:
        assert ask(gateway, "calm").status == 200
        second = ask(gateway, "calm")
        assert second.status == 200
        assert second.headers["x-chatgate-degraded"] == "quota"
        assert second.json()["choices"][0]["message"]["content"] == "Later, please."
    finally:
        gateway.stop()
