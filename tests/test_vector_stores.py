"""OpenAI's Vector Stores API through the official SDK: stores, files (txt, md, html, pdf)
ingested in the background, file batches, attributes with filters, search (hybrid, vector,
keyword) in OpenAI's shapes; stores belong to their key and owner; bad input is a clear 400."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support import (
    MASTER,
    Gateway,
    assert_openai_shape,
    key_client,
    post_json,
    raw,
    start_gateway,
)

DOCUMENTS = Path(__file__).parent / "data" / "documents"

POLICIES = {
    "refunds.txt": "Refund policy. Customers may return any product within 30 days of delivery "
    "for a full refund. Opened software licences cannot be refunded.",
    "shipping.md": "# Shipping\n\nOrders ship from our Rotterdam warehouse within two business "
    "days. Express delivery to Germany takes one day.",
    "security.txt": "Security. API keys must be rotated every 90 days. Error E1042 means the key "
    "was revoked; create a new key in the console.",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path_factory.mktemp("vector-stores"), env={"CHATGATE_MASTER_KEY": MASTER}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> openai.OpenAI:
    return key_client(gateway, owner="team-docs")


def upload(client: openai.OpenAI, name: str, content: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(content)), purpose="assistants").id


@pytest.fixture(scope="module")
def policies(client: openai.OpenAI) -> str:
    store = client.vector_stores.create(name="policies", metadata={"team": "docs"})
    for name, text in POLICIES.items():
        file_id = upload(client, name, text.encode())
        done = client.vector_stores.files.create_and_poll(
            file_id=file_id,
            vector_store_id=store.id,
            attributes={"source": name.split(".")[0], "year": 2026 if "ship" in name else 2025},
            max_wait_seconds=120,
        )
        assert done.status == "completed", done.last_error
    return store.id


def test_store_lifecycle_in_openai_shapes(gateway: Gateway, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="lifecycle", metadata={"k": "v"}, expires_after={"anchor": "last_active_at", "days": 3}
    )
    assert store.status == "completed" and store.file_counts.total == 0
    assert store.expires_at is not None and store.expires_at >= store.created_at + 3 * 86400 - 1
    fetched = raw(f"{gateway.base_url}/vector_stores/{store.id}", headers=client_auth(client))
    assert_openai_shape(fetched.json(), "VectorStoreObject")
    lasting = client.vector_stores.create(name="no expiry")
    fetched = raw(f"{gateway.base_url}/vector_stores/{lasting.id}", headers=client_auth(client))
    assert "expires_after" not in fetched.json()  # optional, not nullable, in OpenAI's schema
    assert_openai_shape(fetched.json(), "VectorStoreObject")
    renamed = client.vector_stores.update(store.id, name="renamed", metadata={"k": "w"})
    assert renamed.name == "renamed" and renamed.metadata == {"k": "w"}
    listed = raw(f"{gateway.base_url}/vector_stores?limit=100", headers=client_auth(client))
    assert_openai_shape(listed.json(), "ListVectorStoresResponse")
    assert store.id in [s["id"] for s in listed.json()["data"]]
    deleted = client.vector_stores.delete(store.id)
    assert deleted.deleted and deleted.id == store.id
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def client_auth(client: openai.OpenAI) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.api_key}"}


def test_files_are_ingested_and_searchable(
    gateway: Gateway, client: openai.OpenAI, policies: str
) -> None:
    store = client.vector_stores.retrieve(policies)
    assert store.file_counts.completed == 3 and store.status == "completed"
    assert store.usage_bytes > 0
    page = raw(
        f"{gateway.base_url}/vector_stores/{policies}/files?limit=10", headers=client_auth(client)
    )
    assert_openai_shape(page.json(), "ListVectorStoreFilesResponse")
    for item in page.json()["data"]:
        assert_openai_shape(item, "VectorStoreFileObject")
        assert item["chunking_strategy"] == {
            "type": "static",
            "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
        }
    # A paraphrase (no shared keywords) finds the refund policy by meaning.
    result = client.vector_stores.search(policies, query="Can I send back what I bought?")
    assert result.data[0].filename == "refunds.txt"
    assert 0 < result.data[0].score <= 1
    body = post_json(
        f"{gateway.base_url}/vector_stores/{policies}/search",
        {"query": "E1042", "max_num_results": 2},
        **client_auth(client),
    )
    assert_openai_shape(body.json(), "VectorStoreSearchResultsPage")
    assert body.json()["data"][0]["filename"] == "security.txt"
    assert body.json()["search_query"] == ["E1042"]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_search_modes(client: openai.OpenAI, policies: str, mode: str) -> None:
    result = client.vector_stores.search(
        policies, query="rotate API keys every 90 days", extra_body={"search_mode": mode}
    )
    assert result.data[0].filename == "security.txt"
    scores = [r.score for r in result.data]
    assert scores == sorted(scores, reverse=True)


def test_filters_on_attributes(client: openai.OpenAI, policies: str) -> None:
    only_2026 = client.vector_stores.search(
        policies, query="refund", filters={"type": "gte", "key": "year", "value": 2026}
    )
    assert {r.filename for r in only_2026.data} == {"shipping.md"}
    either = client.vector_stores.search(
        policies,
        query="policy",
        filters={
            "type": "or",
            "filters": [
                {"type": "eq", "key": "source", "value": "refunds"},
                {"type": "in", "key": "source", "value": ["security"]},
            ],
        },
    )
    assert {r.filename for r in either.data} == {"refunds.txt", "security.txt"}
    none = client.vector_stores.search(
        policies, query="refund", filters={"type": "eq", "key": "source", "value": "nothing"}
    )
    assert none.data == []


def test_score_threshold(client: openai.OpenAI, policies: str) -> None:
    result = client.vector_stores.search(
        policies, query="refund", ranking_options={"score_threshold": 1.0},
        extra_body={"search_mode": "vector"},
    )  # fmt: skip
    assert result.data == []


def test_html_and_pdf_files(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="formats")
    for path in (DOCUMENTS / "page.html", DOCUMENTS / "two_pages.pdf"):
        file_id = upload(client, path.name, path.read_bytes())
        done = client.vector_stores.files.create_and_poll(
            file_id=file_id, vector_store_id=store.id, max_wait_seconds=120
        )
        assert done.status == "completed", done.last_error
        content = client.vector_stores.files.content(file_id, vector_store_id=store.id)
        text = "".join(part.text or "" for part in content)
        assert text.strip()
        assert "<" not in text if path.suffix == ".html" else True


def test_unreadable_files_fail_with_openai_codes(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="bad")
    exe = upload(client, "tool.exe", b"MZ\x90\x00binary")
    broken = upload(client, "broken.pdf", b"%PDF-1.7 this is not really a pdf")
    for file_id, code in ((exe, "unsupported_file"), (broken, "invalid_file")):
        done = client.vector_stores.files.create_and_poll(
            file_id=file_id, vector_store_id=store.id, max_wait_seconds=120
        )
        assert done.status == "failed"
        assert done.last_error is not None and done.last_error.code == code
    assert client.vector_stores.retrieve(store.id).file_counts.failed == 2


def test_file_batches_and_static_chunking(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="batch")
    long_text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))
    ids = [upload(client, f"doc{i}.txt", long_text.encode()) for i in range(3)]
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        file_ids=ids,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
        },
        attributes={"kind": "bulk"},
    )
    assert batch.status == "completed"
    assert batch.file_counts.completed == 3 and batch.file_counts.total == 3
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert sorted(f.id for f in listed.data) == sorted(ids)
    assert all(f.attributes == {"kind": "bulk"} for f in listed.data)
    chunks = client.vector_stores.files.content(ids[0], vector_store_id=store.id)
    assert len(list(chunks)) > 5  # 200-token windows over a ~4,000-token text


def test_attributes_update_and_detach(client: openai.OpenAI, gateway: Gateway) -> None:
    store = client.vector_stores.create(name="detach")
    file_id = upload(client, "note.txt", b"The cafeteria opens at eight.")
    client.vector_stores.files.create_and_poll(
        file_id=file_id, vector_store_id=store.id, max_wait_seconds=120
    )
    updated = client.vector_stores.files.update(
        file_id, vector_store_id=store.id, attributes={"floor": 2}
    )
    assert updated.attributes == {"floor": 2}
    hit = client.vector_stores.search(
        store.id, query="cafeteria", filters={"type": "eq", "key": "floor", "value": 2}
    )
    assert len(hit.data) == 1
    gone = client.vector_stores.files.delete(file_id, vector_store_id=store.id)
    assert gone.deleted
    assert client.vector_stores.search(store.id, query="cafeteria").data == []


def test_stores_belong_to_their_key_and_owner(gateway: Gateway, policies: str) -> None:
    teammate = key_client(gateway, owner="team-docs")
    stranger = key_client(gateway, owner="team-other")
    assert teammate.vector_stores.retrieve(policies).id == policies
    assert teammate.vector_stores.search(policies, query="refund").data
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.retrieve(policies)
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.search(policies, query="refund")
    assert policies not in [s.id for s in stranger.vector_stores.list()]
    # A stranger cannot attach someone else's file either.
    theirs = upload(teammate, "t.txt", b"private")
    own_store = stranger.vector_stores.create(name="mine")
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.files.create(vector_store_id=own_store.id, file_id=theirs)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("", {"name": "x", "unknown": 1}, "unknown"),
        ("", {"expires_after": {"anchor": "created_at", "days": 1}}, "expires_after.anchor"),
        ("", {"chunking_strategy": {"type": "static", "static": {
            "max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}}},
         "chunking_strategy.static.max_chunk_size_tokens"),
        ("/{id}/search", {"query": "x", "max_num_results": 51}, "max_num_results"),
        ("/{id}/search", {"query": "x", "filters": {"type": "near", "key": "a", "value": 1}},
         "filters"),
        ("/{id}/search", {}, "query"),
        ("/{id}/files", {"file_id": "file-missing"}, "file_id"),
        ("/{id}/files", {"file_id": "x", "attributes": {"k" * 65: 1}}, "attributes"),
    ],
)  # fmt: skip
def test_bad_requests_are_clear_errors(
    gateway: Gateway, client: openai.OpenAI, policies: str, path: str, body: dict[str, Any], *,
    param: str,
) -> None:  # fmt: skip
    url = f"{gateway.base_url}/vector_stores{path.replace('{id}', policies)}"
    response = post_json(url, body, **client_auth(client))
    assert response.status in (400, 404), response.body
    assert_openai_shape(response.json(), "ErrorResponse")
    assert (response.json()["error"]["param"] or "").startswith(param), response.json()


def test_an_expired_store_is_not_searched(gateway: Gateway, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="short-lived", expires_after={"anchor": "last_active_at", "days": 1}
    )
    database = gateway.log_path.parent / "data" / "chatgate.db"
    with sqlite3.connect(database) as connection:  # a day later
        connection.execute("UPDATE vector_stores SET expires_at = 1 WHERE id = ?", (store.id,))
    assert client.vector_stores.retrieve(store.id).status == "expired"
    with pytest.raises(openai.BadRequestError) as caught:
        client.vector_stores.search(store.id, query="anything")
    assert caught.value.code == "expired"
