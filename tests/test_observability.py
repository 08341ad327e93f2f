"""The request log (one record per request, written off the request path), usage reports, and
Prometheus metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, post_json, raw, start_gateway
from tests.test_auth import create_key


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fake = FakeUpstream()
    fake.start()
    config = f"""
models:
  - name: echo
    provider: openai_compat
    base_url: {fake.base_url}
    pricing: {{input: 1, output: 2}}
observability: {{flush_interval: 0.1, metrics_token_env: TEST_METRICS_TOKEN}}
"""
    server = start_gateway(
        tmp_path_factory.mktemp("observe"),
        config=config,
        env={"CHATGATE_MASTER_KEY": MASTER, "TEST_METRICS_TOKEN": "metrics-token-123"},
    )
    yield server
    server.stop()
    fake.stop()


def admin(gateway: Gateway, path: str) -> Any:
    return raw(gateway.url + path, headers={"Authorization": f"Bearer {MASTER}"})


def usage(gateway: Gateway, group_by: str, want: int, **query: str) -> list[dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in {"group_by": group_by, **query}.items())
    deadline = time.monotonic() + 10
    while True:
        rows: list[dict[str, Any]] = admin(gateway, f"/admin/usage?{params}").json()["data"]
        if sum(r["requests"] for r in rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)  # polling for the batched write, bounded


def test_every_request_is_recorded_and_reported(gateway: Gateway) -> None:
    key = create_key(gateway, owner="team-obs")
    auth = {"Authorization": f"Bearer {key['secret']}"}
    ok = {"model": "echo", "messages": [{"role": "user", "content": "one two"}]}
    for _ in range(3):
        assert post_json(f"{gateway.base_url}/chat/completions", ok, **auth).status == 200
    streamed = post_json(f"{gateway.base_url}/chat/completions", {**ok, "stream": True}, **auth)
    assert streamed.status == 200
    bad = post_json(f"{gateway.base_url}/chat/completions", {"model": "echo"}, **auth)
    assert bad.status == 400
    rows = usage(gateway, "key", want=5)
    (mine,) = [r for r in rows if r["group"] == key["id"]]
    assert mine["requests"] == 5 and mine["errors"] == 1
    assert mine["prompt_tokens"] > 0 and mine["completion_tokens"] == 8  # "one two" x 4
    assert mine["cost"] == pytest.approx((mine["prompt_tokens"] * 1 + 8 * 2) / 1e6)
    owners = usage(gateway, "owner", want=5)
    assert any(r["group"] == "team-obs" and r["requests"] == 5 for r in owners)
    days = usage(gateway, "day", want=5)
    assert days[-1]["group"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert usage(gateway, "model", want=0, **{"from": "2001-01-01", "to": "2001-01-02"}) == []


def test_bad_report_parameters(gateway: Gateway) -> None:
    assert admin(gateway, "/admin/usage?group_by=colour").status == 400
    assert admin(gateway, "/admin/usage?from=yesterday").status == 400
    assert raw(f"{gateway.url}/admin/usage").status == 401


def test_metrics(gateway: Gateway) -> None:
    post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": 0},
        Authorization=f"Bearer {MASTER}",
    )
    post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": "some-secret-project-name", "messages": [{"role": "user", "content": "x"}]},
        Authorization=f"Bearer {MASTER}",
    )
    assert raw(f"{gateway.url}/metrics").status == 401
    text = raw(
        f"{gateway.url}/metrics", headers={"Authorization": "Bearer metrics-token-123"}
    ).body.decode()
    chat = 'endpoint="/v1/chat/completions"'
    assert f'chatgate_requests_total{{{chat},model="echo",status="200"}}' in text
    assert f'chatgate_requests_total{{{chat},model="unknown",status="404"}}' in text
    assert "some-secret-project-name" not in text  # labels never carry what users typed
    assert "chatgate_request_duration_seconds_bucket" in text
    assert "chatgate_gateway_overhead_seconds_count" in text
    assert 'chatgate_cache_total{result="miss"}' in text
    assert 'chatgate_limit_waiting{priority="critical"} 0.0' in text
    assert 'chatgate_breaker_open{deployment="0",model="echo"} 0.0' in text
    assert "chatgate_upstream_errors_total" in text
    assert admin(gateway, "/metrics").status == 200


def test_records_carry_the_latency_breakdown(gateway: Gateway) -> None:
    line = next(
        json.loads(entry.split("chatgate.requests: ", 1)[1])
        for entry in gateway.log_with('"status":200').splitlines()
        if "chatgate.requests: " in entry and '"status":200' in entry
    )
    assert line["event"] == "request"
    assert line["total_ms"] >= line["upstream_ms"] >= 0
    assert line["overhead_ms"] is not None and line["request_id"].startswith("req_")


def test_cli_usage(gateway: Gateway) -> None:
    data_dir = gateway.log_path.parent / "data"
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", "usage", "--group-by", "model", "--format", "csv"],
        env={"CHATGATE_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model,requests,errors")
    assert any(line.startswith("echo,") for line in lines[1:])
