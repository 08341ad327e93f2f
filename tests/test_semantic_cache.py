"""The semantic cache (opt-in): an answer is reused for a prompt that means the same — same
model, parameters and non-user messages, same key — and never for a near miss (another city,
number, weekday, negation, swapped comparison). Pairs in tests/data/semantic-cache-pairs.jsonl,
through the gateway against an upstream that echoes the prompt, so a wrong reuse shows as the
wrong text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, key_client, post_json, start_gateway

PAIRS = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "semantic-cache-pairs.jsonl").open()
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    fake.start()
    config = {
        "cache": {"semantic": True},
        "models": [{"name": "echo", "provider": "openai_compat", "base_url": fake.base_url}],
    }
    server = start_gateway(
        tmp_path_factory.mktemp("semantic"),
        config=json.dumps(config),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    yield server, fake
    server.stop()
    fake.stop()


def ask(
    gateway: Gateway, key: str, text: str, system: str = "You answer briefly.", **extra: Any
) -> tuple[str, str, str | None]:
    body = {
        "model": "echo",
        "temperature": 0,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
        **extra,
    }
    response = post_json(
        f"{gateway.base_url}/chat/completions", body, Authorization=f"Bearer {key}"
    )
    assert response.status == 200, response.body
    content = response.json()["choices"][0]["message"]["content"]
    return (
        content,
        response.headers["x-chatgate-cache"],
        response.headers.get("x-chatgate-cache-similarity"),
    )


def test_paraphrases_hit_and_near_misses_never_do(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    key = key_client(server).api_key
    for question in dict.fromkeys(p["a"] for p in PAIRS):
        assert ask(server, key, question)[:2] == (question, "miss")
    reused, false_hits = 0, []
    for pair in PAIRS:
        content, cache, similarity = ask(server, key, pair["b"])
        if pair["same"]:
            if cache == "semantic-hit":
                assert content == pair["a"]  # the answer to the paraphrased question
                assert similarity is not None and float(similarity) >= 0.93
                reused += 1
        elif content != pair["b"]:
            false_hits.append((pair["b"], content))
    assert false_hits == []
    paraphrases = sum(p["same"] for p in PAIRS)
    assert reused >= 0.8 * paraphrases, f"{reused}/{paraphrases} paraphrases reused"


def test_answers_stay_with_their_key_and_context(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    first, second = key_client(server).api_key, key_client(server).api_key
    question, paraphrase = "How do I rotate an API key?", "How can I rotate my API key?"
    assert ask(server, first, question, system="Context A.")[1] == "miss"
    assert ask(server, first, paraphrase, system="Context A.")[1] == "semantic-hit"
    # Another key, or another system prompt: a partition of its own.
    assert ask(server, second, paraphrase, system="Context A.") == (paraphrase, "miss", None)
    assert ask(server, first, paraphrase, system="Context B.")[1] == "miss"
    # Other parameters (max_tokens) shape the answer too.
    assert ask(server, first, paraphrase, system="Context A.", max_tokens=5)[1] == "miss"


def test_only_deterministic_requests_and_streams_replay(
    gateway: tuple[Gateway, FakeUpstream],
) -> None:
    server, _ = gateway
    key = key_client(server).api_key
    assert ask(server, key, "What is the refund policy?", system="S.")[1] == "miss"
    sampled = post_json(
        f"{server.base_url}/chat/completions",
        {
            "model": "echo",
            "temperature": 1,
            "messages": [
                {"role": "system", "content": "S."},
                {"role": "user", "content": "What's your refund policy?"},
            ],
        },
        Authorization=f"Bearer {key}",
    )
    assert sampled.headers["x-chatgate-cache"] == "bypass"
    streamed = post_json(
        f"{server.base_url}/chat/completions",
        {
            "model": "echo",
            "temperature": 0,
            "stream": True,
            "messages": [
                {"role": "system", "content": "S."},
                {"role": "user", "content": "What's your refund policy?"},
            ],
        },
        Authorization=f"Bearer {key}",
    )
    assert streamed.headers["x-chatgate-cache"] == "semantic-hit"
    assert b"What is the refund policy?" in streamed.body
