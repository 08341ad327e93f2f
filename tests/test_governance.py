"""Every operation passes the same stages as chat, through the real HTTP path with the official
SDK: a key's request and token limits (429 with OpenAI's headers, nothing charged), budgets (priced
per input token, refused with ``insufficient_quota``), the request log with the endpoint, usage
reports and Prometheus series per endpoint — for embeddings, moderations, vector-store search,
file uploads, batch creation and the ingestion of files into vector stores."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, raw, start_gateway
from tests.test_auth import admin, create_key, sdk

EMBED = "text-embedding-3-small"
"""Served by the fake upstream, priced as OpenAI prices it ($0.02 per 1M input tokens)."""


@pytest.fixture(scope="module")
def governed(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = f"""
models:
  - {{name: echo, provider: openai_compat, base_url: '{upstream.base_url}'}}
embedding_models:
  - {{name: {EMBED}, provider: openai_compat, base_url: '{upstream.base_url}'}}
vector_stores:
  embedding_model: {EMBED}
  poll_interval: 0.05
  storage_interval: 0.1
observability:
  flush_interval: 0.05
"""
    server = start_gateway(
        tmp_path_factory.mktemp("governed"), config=config, env={"CHATGATE_MASTER_KEY": MASTER}
    )
    yield server
    server.stop()


def _client(gateway: Gateway, **fields: Any) -> openai.OpenAI:
    return _keyed(gateway, **fields)[0]


def _keyed(gateway: Gateway, **fields: Any) -> tuple[openai.OpenAI, str]:
    """The SDK on a new key of the owner ``team``, and the key's id."""
    key = create_key(gateway, owner="team", **fields)
    return sdk(gateway, key["secret"]), key["id"]


def _jsonl(*lines: str) -> io.BytesIO:
    return io.BytesIO("\n".join(lines).encode())


def _batch_input(client: openai.OpenAI) -> str:
    line = (
        '{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", '
        f'"body": {{"model": "{EMBED}", "input": "one two"}}}}'
    )
    return client.files.create(file=_jsonl(line), purpose="batch").id


OPERATIONS: dict[str, Callable[[openai.OpenAI, dict[str, str]], Any]] = {
    "/v1/embeddings": lambda c, _: c.embeddings.create(model=EMBED, input="hello there"),
    "/v1/moderations": lambda c, _: c.moderations.create(input="a kind word"),
    "/v1/vector_stores/{vector_store_id}/search": lambda c, made: c.vector_stores.search(
        made["store"], query="anything"
    ),
    "/v1/files": lambda c, _: c.files.create(file=_jsonl("x"), purpose="user_data"),
    "/v1/batches": lambda c, made: c.batches.create(
        input_file_id=made["input"], endpoint="/v1/embeddings", completion_window="24h"
    ),
}


@pytest.fixture(scope="module")
def made(governed: Gateway) -> dict[str, str]:
    """What the operations work on, made by an unlimited key of the same owner."""
    setup = _client(governed)
    return {"store": setup.vector_stores.create(name="s").id, "input": _batch_input(setup)}


@pytest.mark.parametrize("endpoint", list(OPERATIONS))
def test_every_operation_counts_against_the_keys_request_limit(
    governed: Gateway, made: dict[str, str], endpoint: str
) -> None:
    client = _client(governed, limits={"rpm": 2})
    operation = OPERATIONS[endpoint]
    operation(client, made)
    operation(client, made)
    with pytest.raises(openai.RateLimitError) as refused:
        operation(client, made)
    response = refused.value.response
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")


def test_embedding_and_moderation_input_tokens_count_toward_tpm(governed: Gateway) -> None:
    client = _client(governed, limits={"tpm": 40})
    twelve = " ".join(["word"] * 12)  # reserved as 15 tokens (4 characters a token)
    first = client.embeddings.create(model=EMBED, input=twelve)
    assert first.usage.prompt_tokens == 12  # the reservation is settled to what was used
    client.moderations.create(input=" ".join(["calm"] * 16))  # 20 tokens: 32 of 40 used
    with pytest.raises(openai.RateLimitError) as refused:  # 32 + 15 > 40
        client.embeddings.create(model=EMBED, input=twelve)
    assert "Rate limit reached for tokens" in refused.value.response.json()["error"]["message"]


def test_embedding_spend_is_priced_and_reaches_the_budget(governed: Gateway) -> None:
    # $0.02 per 1M tokens: 40 tokens cost $8e-7; a budget of $1e-6 has room for one such call.
    client = _client(governed, budget={"total": 0.000001})
    text = " ".join(["word"] * 40)
    answer = client.embeddings.with_raw_response.create(model=EMBED, input=text)
    assert float(answer.headers["x-chatgate-cost"]) == pytest.approx(40 * 0.02 / 1e6)
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=EMBED, input=text)
    error = refused.value.response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")


def _usage(gateway: Gateway, group_by: str, wanted: Callable[[dict[str, Any]], bool]) -> Any:
    """``/admin/usage`` once ``wanted`` holds (the request log is written in batches)."""
    deadline = time.monotonic() + 15
    while True:
        rows = admin(gateway, "GET", f"/admin/usage?group_by={group_by}").json()["data"]
        found = {row["group"]: row for row in rows}
        if wanted(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)  # polling the batched request log, bounded


def test_every_operation_is_logged_reported_and_counted_by_endpoint(
    governed: Gateway, made: dict[str, str]
) -> None:
    client = _client(governed)
    for operation in OPERATIONS.values():
        operation(client, made)
    by_endpoint = _usage(governed, "endpoint", lambda found: set(OPERATIONS) <= set(found))
    assert set(OPERATIONS) <= set(by_endpoint)
    assert by_endpoint["/v1/embeddings"]["cost"] > 0
    assert by_endpoint["/v1/embeddings"]["prompt_tokens"] > 0
    by_model = _usage(governed, "model", lambda found: EMBED in found)
    assert EMBED in by_model  # embedding spend shows in the usage report, beside chat models
    metrics = raw(f"{governed.url}/metrics", headers={"Authorization": f"Bearer {MASTER}"})
    text = metrics.body.decode()
    for endpoint, model in (
        ("/v1/embeddings", EMBED),
        ("/v1/moderations", "chatgate-moderation-rules"),
        ("/v1/vector_stores/{vector_store_id}/search", EMBED),
        ("/v1/files", "-"),
        ("/v1/batches", "-"),
    ):
        assert f'chatgate_requests_total{{endpoint="{endpoint}",model="{model}",status="200"}}' in (
            text
        ), endpoint


def test_a_refused_request_is_logged_and_charges_nothing(governed: Gateway) -> None:
    client, key_id = _keyed(governed, limits={"rpm": 1})
    client.embeddings.create(model=EMBED, input="one")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=EMBED, input="two words")
    rows = _usage(governed, "key", lambda found: found.get(key_id, {}).get("requests") == 2)
    assert rows[key_id]["requests"] == 2 and rows[key_id]["errors"] == 1
    assert rows[key_id]["prompt_tokens"] == 1
    assert rows[key_id]["cost"] == pytest.approx(1 * 0.02 / 1e6)


def _ingest(client: openai.OpenAI, text: str) -> Any:
    store = client.vector_stores.create(name="docs")
    upload = client.files.create(
        file=("notes.txt", io.BytesIO(text.encode())), purpose="assistants"
    )
    return store.id, client.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=upload.id
    )


def test_ingesting_a_file_is_an_operation_of_the_stores_key(governed: Gateway) -> None:
    client, key_id = _keyed(governed)
    words = " ".join(f"word{i}" for i in range(30))
    _, done = _ingest(client, words)
    assert done.status == "completed"
    endpoint = "/v1/vector_stores/{vector_store_id}/files"
    rows = _usage(governed, "endpoint", lambda found: endpoint in found)
    assert rows[endpoint]["prompt_tokens"] > 0  # the chunks' embedding tokens, as the model counted
    assert rows[endpoint]["cost"] > 0  # priced at the embedding model's price
    by_key = _usage(governed, "key", lambda found: found.get(key_id, {}).get("prompt_tokens"))
    assert by_key[key_id]["prompt_tokens"] > 0  # its upload has none: the ingestion is the key's


def test_a_file_larger_than_the_keys_token_limit_fails_with_the_reason(governed: Gateway) -> None:
    client = _client(governed, limits={"tpm": 5})
    _, done = _ingest(client, " ".join(f"word{i}" for i in range(50)))
    assert done.status == "failed"
    assert done.last_error is not None
    assert done.last_error.code == "server_error"
    assert "tokens-per-minute limit" in done.last_error.message


def test_ingestion_spend_reaches_the_budget(governed: Gateway) -> None:
    client = _client(governed, budget={"total": 0.0000001})  # room for 5 tokens
    _, done = _ingest(client, " ".join(f"word{i}" for i in range(50)))
    assert done.status == "failed"
    assert done.last_error is not None and "budget" in done.last_error.message


def test_vector_storage_is_reported_in_gb_days(governed: Gateway) -> None:
    client, key_id = _keyed(governed)
    store_id, done = _ingest(client, " ".join(f"word{i}" for i in range(30)))
    assert done.status == "completed"
    size = client.vector_stores.retrieve(store_id).usage_bytes
    assert size > 0
    deadline = time.monotonic() + 15
    while True:  # sampled every storage_interval (0.1 s here; an hour by default)
        report = admin(governed, "GET", "/admin/usage/storage?group_by=store").json()
        rows = {row["group"]: row for row in report["data"]}
        if rows.get(store_id, {}).get("gb_days") or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling the meter, bounded
    assert report["price_per_gb_day"] == 0.10
    assert rows[store_id]["gb_days"] == pytest.approx(size / 1e9)  # one day at its size
    assert rows[store_id]["cost"] == pytest.approx(size / 1e9 * 0.10)
    by_key = admin(governed, "GET", "/admin/usage/storage?group_by=key").json()["data"]
    assert key_id in {row["group"] for row in by_key}
    refused = admin(governed, "GET", "/admin/usage/storage?group_by=model")
    assert refused.status == 400 and refused.json()["error"]["param"] == "group_by"
