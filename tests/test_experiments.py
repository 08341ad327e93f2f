"""A/B experiments through the gateway: traffic split by weight and sticky per user, the
variant applied to what goes upstream, feedback by request id (only the requesting key's
counts), and the report's fixed-horizon decision."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, post_json, raw, start_gateway

ADMIN = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    fake.start()
    config = {
        "observability": {"flush_interval": 0.05},
        "models": [
            {"name": "echo", "provider": "openai_compat", "base_url": fake.base_url},
            {"name": "other", "provider": "openai_compat", "base_url": fake.base_url},
        ],
        "experiments": [
            {
                "name": "tone",
                "model": "echo",
                "horizon": 30,
                "variants": [
                    {"name": "control", "weight": 1},
                    {
                        "name": "warm",
                        "weight": 1,
                        "system": "Be warm.",
                        "temperature": 0.9,
                        "max_tokens": 33,
                        "model": "other",
                    },
                ],
            },
            {
                "name": "wording",
                "prompt": "greet",
                "metric": "label",
                "variants": [
                    {"name": "v1", "prompt_version": 1},
                    {"name": "v2", "prompt_version": 2},
                ],
            },
        ],
    }
    server = start_gateway(
        tmp_path_factory.mktemp("experiments"),
        config=json.dumps(config),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    yield server, fake
    server.stop()
    fake.stop()


def new_key(server: Gateway) -> str:
    created = post_json(f"{server.url}/admin/keys", {"name": secrets.token_hex(3)}, **ADMIN)
    return str(created.json()["secret"])


def ask(server: Gateway, key: str, user: str, client_id: str | None = None) -> str:
    """One chat request as ``user`` (sending ``client_id`` as its ``x-request-id``); the
    gateway's id for it."""
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    headers = {"x-request-id": client_id} if client_id else {}
    answer = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": f"hello from {user}"}],
        user=user,
        extra_headers=headers,
    )
    return answer.headers["x-request-id"]


def upstream_of(fake: FakeUpstream, user: str) -> dict[str, Any]:
    for received in reversed(fake.received):
        if received.body.get("user") == user:
            return received.body
    raise AssertionError(f"no upstream request for {user}")


def report(server: Gateway, name: str, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = raw(
            f"{server.url}/admin/experiments/{name}/report", headers=ADMIN
        ).json()
        seen = sum(v["requests"] for v in body["variants"])
        if seen >= requests or time.monotonic() > deadline:
            return body
        time.sleep(0.05)  # polling for the batched request-log write, bounded


def test_split_is_sticky_weighted_and_applied(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, fake = gateway
    key = new_key(server)
    variants: Counter[str] = Counter()
    for i in range(120):
        user = f"user-{i}"
        ask(server, key, user)
        body = upstream_of(fake, user)
        if body["model"] == "other":
            variants["warm"] += 1
            assert body["messages"][0] == {"role": "system", "content": "Be warm."}
            assert body["temperature"] == 0.9 and body["max_tokens"] == 33
        else:
            variants["control"] += 1
            assert body["messages"][0]["role"] == "user" and "temperature" not in body
    assert 35 <= variants["warm"] <= 85, variants  # 50/50 by weight (binomial, 5 sigma)
    for _ in range(5):  # the same user always lands in the same variant
        ask(server, key, "user-7")
    models = {r.body["model"] for r in fake.received if r.body.get("user") == "user-7"}
    assert len(models) == 1
    result = report(server, "tone", 125)
    assert {v["variant"]: v["requests"] for v in result["variants"]} == {
        "control": variants["control"] + 5 * ("echo" in models),
        "warm": variants["warm"] + 5 * ("other" in models),
    }


def test_feedback_decides_at_the_fixed_horizon(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, fake = gateway
    key, stranger = new_key(server), new_key(server)
    sent: list[tuple[str, str]] = []
    for i in range(160):
        user = f"fb-{i}"
        request_id = ask(server, key, user)
        variant = "warm" if upstream_of(fake, user)["model"] == "other" else "control"
        sent.append((request_id, variant))
    early = report(server, "tone", 160)
    assert early["decision"]["state"] == "collecting"
    assert "fixed horizon" in early["decision_rule"]

    def feedback(request_id: str, score: float, secret: str) -> int:
        return post_json(
            f"{server.base_url}/feedback",
            {"request_id": request_id, "score": score},
            Authorization=f"Bearer {secret}",
        ).status

    for n, (request_id, variant) in enumerate(sent):
        assert feedback(request_id, 4.0 + n % 2 if variant == "warm" else 2.0 + n % 2, key) == 201
        assert feedback(request_id, 0.0, stranger) == 404  # not the stranger's answer
    result = report(server, "tone", 160)
    by_name = {v["variant"]: v for v in result["variants"]}
    assert by_name["warm"]["metric"]["value"] == pytest.approx(4.5, abs=0.1)
    assert by_name["control"]["metric"]["value"] == pytest.approx(2.5, abs=0.1)
    low, high = by_name["warm"]["vs_control"]["ci95"]
    assert low < 2.0 < high
    assert result["decision"] == {
        "state": "decided",
        "winner": "warm",
        "text": "warm beats control",
    }


def test_request_ids_are_owned_by_the_gateway_and_feedback_by_the_caller(
    gateway: tuple[Gateway, FakeUpstream],
) -> None:
    server, _ = gateway
    first, second = new_key(server), new_key(server)
    theirs = ask(server, first, "owner-a")
    mine = ask(server, second, "owner-b", client_id=theirs)  # reusing another tenant's id
    assert mine != theirs  # the gateway's id is its own; the client's is only echoed

    def feedback(request_id: str, secret: str) -> Any:
        return post_json(
            f"{server.base_url}/feedback",
            {"request_id": request_id, "score": 0.0},
            Authorization=f"Bearer {secret}",
        )

    refused = feedback(theirs, second)
    assert refused.status == 404 and refused.json()["error"]["param"] == "request_id"
    assert feedback("req_made_up_0123456789abcdef", second).status == 404
    assert feedback(mine, second).status == 201
    assert feedback(theirs, first).status == 201


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "r1"},
        {"score": 1},
        {"request_id": "r1", "score": "high"},
        {"request_id": "r1", "score": 1, "colour": "red"},
    ],
)
def test_bad_feedback_is_a_400(gateway: tuple[Gateway, FakeUpstream], body: Any) -> None:
    response = post_json(f"{gateway[0].base_url}/feedback", body, **ADMIN)
    assert response.status == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_templates_versions_are_split(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, fake = gateway
    for text in ("Hi!", "Hello there!"):
        pushed = post_json(
            f"{server.url}/admin/prompts",
            {"id": "greet", "messages": [{"role": "system", "content": text}]},
            **ADMIN,
        )
        assert pushed.status == 201
    client = openai.OpenAI(base_url=server.base_url, api_key=MASTER, max_retries=0)
    seen = set()
    for i in range(40):
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "hey"}],
            user=f"greeter-{i}",
            extra_body={"prompt": {"id": "greet", "label": "latest"}},
        )
        seen.add(upstream_of(fake, f"greeter-{i}")["messages"][0]["content"])
    assert seen == {"Hi!", "Hello there!"}
    assert report(server, "wording", 40)["metric"] == "label == 'good'"


def test_unknown_experiment_report_is_a_404(gateway: tuple[Gateway, FakeUpstream]) -> None:
    assert raw(f"{gateway[0].url}/admin/experiments/nope/report", headers=ADMIN).status == 404
