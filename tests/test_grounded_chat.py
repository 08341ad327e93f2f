"""Grounded chat: a chat request names vector stores (``knowledge``) or a model is bound to them;
the best chunks go to the model as numbered sources with a cite-your-sources instruction, the
response carries citations with character offsets, and with nothing relevant the answer says it
does not know — without calling the model."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, key_client, start_gateway

HANDBOOK = (
    "Travel policy.\n\nEmployees book flights through the travel desk at least 14 days before "
    "departure. Economy class is required for flights under six hours.\n\nExpense policy.\n\n"
    "Meals on business trips are reimbursed up to 60 euros per day with receipts."
)
NO_ANSWER = "I don't know: the knowledge base has nothing relevant to this question."


def config(upstream: FakeUpstream, extra_models: list[dict[str, Any]] | None = None) -> str:
    models = [
        {"name": "echo", "provider": "openai_compat", "base_url": upstream.base_url},
        {"name": "smollm2-135m-instruct"},
        *(extra_models or []),
    ]
    return json.dumps({"models": models})


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[tuple[Gateway, openai.OpenAI, str, Path]]:
    tmp = tmp_path_factory.mktemp("grounded")
    server = start_gateway(tmp, config=config(upstream), env={"CHATGATE_MASTER_KEY": MASTER})
    client = key_client(server, "team-hr")
    file_id = client.files.create(
        file=("handbook.txt", io.BytesIO(HANDBOOK.encode())), purpose="assistants"
    ).id
    store = client.vector_stores.create(name="handbook")
    done = client.vector_stores.files.create_and_poll(
        file_id=file_id,
        vector_store_id=store.id,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
        },
        max_wait_seconds=120,
    )
    assert done.status == "completed", done.last_error
    yield server, client, store.id, tmp
    server.stop()


def ask(client: openai.OpenAI, store_id: str, question: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=extra.pop("model", "echo"),
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
        ],
        extra_body={"knowledge": {"vector_store_ids": [store_id], "max_num_results": 2}},
        **extra,
    )


def test_sources_reach_the_model_and_citations_come_back(
    setup: tuple[Gateway, openai.OpenAI, str, Path], upstream: FakeUpstream
) -> None:
    _, client, store_id, _ = setup
    answer = ask(client, store_id, "How much can I spend on food per day when travelling?")
    sent = upstream.received[-1].body
    assert "knowledge" not in sent  # chatgate's field never goes upstream
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "system", "user"]  # the caller's system message stays first
    grounding = sent["messages"][1]["content"]
    assert "Cite the sources" in grounding and "[1] (handbook.txt)" in grounding
    assert "60 euros" in grounding
    citations = answer.model_extra["citations"]
    assert citations and citations[0]["index"] == 1
    first = citations[0]
    assert first["filename"] == "handbook.txt" and first["vector_store_id"] == store_id
    assert "60 euros" in first["text"]
    # Offsets point into the source text.
    assert HANDBOOK[first["start_char"] : first["end_char"]] == first["text"]
    assert 0 < first["score"] <= 1 and first["similarity"] >= 0.3


def test_citations_arrive_with_the_first_chunk_of_a_stream(
    setup: tuple[Gateway, openai.OpenAI, str, Path],
) -> None:
    _, client, store_id, _ = setup
    stream = ask(client, store_id, "How early must flights be booked?", stream=True)
    chunks = list(stream)
    assert "citations" in (chunks[0].model_extra or {})
    assert "14 days" in chunks[0].model_extra["citations"][0]["text"]
    assert all("citations" not in (c.model_extra or {}) for c in chunks[1:])


def test_the_embedded_model_answers_grounded(
    setup: tuple[Gateway, openai.OpenAI, str, Path],
) -> None:
    _, client, store_id, _ = setup
    answer = ask(
        client, store_id, "Which class for short flights?", model="smollm2-135m-instruct",
        max_tokens=16, temperature=0,
    )  # fmt: skip
    assert answer.choices[0].message.content
    assert answer.model_extra["citations"][0]["filename"] == "handbook.txt"


def test_nothing_relevant_means_i_dont_know(
    setup: tuple[Gateway, openai.OpenAI, str, Path], upstream: FakeUpstream
) -> None:
    _, client, store_id, _ = setup
    before = len(upstream.received)
    answer = ask(client, store_id, "What is the boiling point of tungsten in kelvin?")
    assert answer.choices[0].message.content == NO_ANSWER
    assert answer.model_extra["citations"] == []
    assert len(upstream.received) == before  # the model was not asked


def test_someone_elses_store_is_not_found(setup: tuple[Gateway, openai.OpenAI, str, Path]) -> None:
    server, _, store_id, _ = setup
    stranger = key_client(server, "team-other")
    with pytest.raises(openai.NotFoundError):
        ask(stranger, store_id, "How much for meals?")


@pytest.mark.parametrize(
    ("knowledge", "param"),
    [
        ("vs_x", "knowledge"),
        ({}, "knowledge.vector_store_ids"),
        ({"vector_store_ids": []}, "knowledge.vector_store_ids"),
        ({"vector_store_ids": ["a"], "max_num_results": 0}, "knowledge.max_num_results"),
        ({"vector_store_ids": ["a"], "surprise": 1}, "knowledge.surprise"),
    ],
)
def test_bad_knowledge_is_a_400(
    setup: tuple[Gateway, openai.OpenAI, str, Path], knowledge: Any, param: str
) -> None:
    _, client, _, _ = setup
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"knowledge": knowledge},
        )
    assert caught.value.body["param"] == param  # type: ignore[index]


def test_a_model_bound_to_stores(
    setup: tuple[Gateway, openai.OpenAI, str, Path], upstream: FakeUpstream
) -> None:
    _, _, store_id, tmp = setup
    bound = {
        "name": "handbook-bot",
        "provider": "openai_compat",
        "base_url": upstream.base_url,
        "upstream_model": "echo",
        "knowledge": {"vector_store_ids": [store_id], "max_num_results": 1},
    }
    # A second gateway on the same data: the binding names the store created above.
    second = start_gateway(
        tmp / "second",
        config=config(upstream, [bound]),
        env={"CHATGATE_MASTER_KEY": MASTER, "CHATGATE_DATA_DIR": str(tmp / "data")},
    )
    try:
        client = key_client(second, "team-anyone")  # any caller of the model gets its knowledge
        answer = client.chat.completions.create(
            model="handbook-bot", messages=[{"role": "user", "content": "meal allowance per day?"}]
        )
        citations = (answer.model_extra or {})["citations"]
        assert len(citations) == 1 and "60 euros" in citations[0]["text"]
        assert "[1] (handbook.txt)" in upstream.received[-1].body["messages"][0]["content"]
    finally:
        second.stop()
