"""Cost per request, and budgets enforced by reservation (no overspend under concurrency)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.services import postgres_database
from tests.support import MASTER, Gateway, post_json, raw, start_gateway
from tests.test_auth import create_key

# A dollar per completion token and free prompts make the arithmetic of these tests exact.
PRICED = "pricing: {input: 0, output: 1000000}"


def config(upstream: FakeUpstream, extra: str = "") -> str:
    base = upstream.base_url
    return f"""{extra}
models:
  - name: priced
    provider: openai_compat
    base_url: {base}
    upstream_model: sleep-0.3-priced
    {PRICED}
  - name: gpt-4o-mini
    provider: openai_compat
    base_url: {base}
  - name: mystery
    provider: openai_compat
    base_url: {base}
    upstream_model: mystery-model
  - name: smollm2-135m-instruct
"""


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    extra = "budgets: {owners: {frugal: {daily: 2}}}"
    server = start_gateway(
        tmp_path_factory.mktemp("budgets"),
        config=config(upstream, extra),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    yield server
    server.stop()


def ask(gateway: Gateway, key: str, model: str = "priced", **fields: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    body.update(fields)
    return post_json(f"{gateway.base_url}/chat/completions", body, Authorization=f"Bearer {key}")


def spend(gateway: Gateway, key_id: str, kind: str = "total", at_least: float = 0.0) -> float:
    deadline = time.monotonic() + 10
    while True:
        shown = raw(
            f"{gateway.url}/admin/keys/{key_id}", headers={"Authorization": f"Bearer {MASTER}"}
        ).json()
        value = float(shown["spend"][kind])
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.1)  # polling for the batched spend write, bounded


def test_cost_header(gateway: Gateway) -> None:
    priced = ask(gateway, MASTER)
    assert float(priced.headers["x-chatgate-cost"]) == 1.0  # one completion token
    upstream_priced = ask(gateway, MASTER, model="gpt-4o-mini", max_tokens=5)
    usage = upstream_priced.json()["usage"]
    expected = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.60) / 1e6
    assert float(upstream_priced.headers["x-chatgate-cost"]) == pytest.approx(expected)
    local = ask(gateway, MASTER, model="smollm2-135m-instruct")
    assert float(local.headers["x-chatgate-cost"]) == 0.0


async def _concurrent(gateway: Gateway, key: str, count: int) -> list[int]:
    body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def one() -> int:
            url = f"{gateway.base_url}/chat/completions"
            async with session.post(url, json=body, headers=headers) as response:
                if response.status == 429:
                    assert (await response.json())["error"]["type"] == "insufficient_quota"
                return response.status

        return await asyncio.gather(*(one() for _ in range(count)))


def test_concurrent_requests_cannot_overspend(gateway: Gateway) -> None:
    key = create_key(gateway, budget={"total": 10})
    statuses = asyncio.run(_concurrent(gateway, key["secret"], 50))
    assert statuses.count(200) == 10
    assert statuses.count(429) == 40
    assert spend(gateway, key["id"], at_least=10) == pytest.approx(10.0)


def test_reservations_settle_to_actual_cost(gateway: Gateway) -> None:
    key = create_key(gateway, budget={"daily": 5})
    # each request reserves 3 (max_tokens 3) and spends 1 (the fake answers "hi": one token)
    statuses = [ask(gateway, key["secret"], max_tokens=3).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert spend(gateway, key["id"], "daily", at_least=3) == pytest.approx(3.0)


def test_owner_budget_from_config(gateway: Gateway) -> None:
    first, second = create_key(gateway, owner="frugal"), create_key(gateway, owner="frugal")
    assert ask(gateway, first["secret"]).status == 200
    assert ask(gateway, second["secret"]).status == 200
    refused = ask(gateway, first["secret"])
    assert refused.status == 429
    assert "owner:frugal" in refused.json()["error"]["message"]


def test_unpriced_model_cannot_be_budgeted(gateway: Gateway) -> None:
    key = create_key(gateway, budget={"total": 100})
    response = ask(gateway, key["secret"], model="mystery")
    assert response.status == 403
    assert response.json()["error"]["code"] == "unpriced_model"


def test_budgets_hold_across_replicas_on_redis(
    upstream: FakeUpstream, tmp_path: Path, postgres_admin: str, redis_url: str
) -> None:
    prefix = f"test-{secrets.token_hex(4)}"
    extra = f"budgets: {{backend: redis, redis_url: '{redis_url}', redis_prefix: {prefix}}}"
    env = {"CHATGATE_MASTER_KEY": MASTER}
    with postgres_database(postgres_admin) as url:
        env["CHATGATE_STORE__URL"] = url
        one = start_gateway(tmp_path / "one", config=config(upstream, extra), env=env)
        two = start_gateway(tmp_path / "two", config=config(upstream, extra), env=env)
        try:
            key = create_key(one, budget={"total": 6})

            async def both() -> list[int]:
                halves = await asyncio.gather(
                    _concurrent(one, key["secret"], 15), _concurrent(two, key["secret"], 15)
                )
                return halves[0] + halves[1]

            statuses = asyncio.run(both())
            assert statuses.count(200) == 6
        finally:
            one.stop()
            two.stop()
