"""``/v1/files`` through the official SDK: upload, list with pagination, retrieve, content,
delete, in OpenAI's shapes; files belong to their key (and its owner); content is sealed at rest;
size limits and bad input are clear 400s."""

from __future__ import annotations

import io
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support import MASTER, Gateway, assert_openai_shape, post_json, raw, start_gateway

ADMIN = {"Authorization": f"Bearer {MASTER}"}
DATA_KEY = "q0Yl8m8nTl1o8kH3G6xVx9y1X3JfC0Xo2T9YqgYxQ0k="  # 32 bytes, base64


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = (
        "files: {max_bytes: 3000000}\n"
        "encryption:\n  keys:\n    - {id: k1, key_env: CHATGATE_TEST_DATA_KEY}\n"
    )
    server = start_gateway(
        tmp_path_factory.mktemp("files"),
        config=config,
        env={"CHATGATE_MASTER_KEY": MASTER, "CHATGATE_TEST_DATA_KEY": DATA_KEY},
    )
    yield server
    server.stop()


def key(gateway: Gateway, owner: str | None = None) -> openai.OpenAI:
    spec: dict[str, Any] = {"name": secrets.token_hex(3)}
    if owner:
        spec["owner"] = owner
    secret = post_json(f"{gateway.url}/admin/keys", spec, **ADMIN).json()["secret"]
    return openai.OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)


LINES = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n' * 3


def test_upload_retrieve_content_list_delete(gateway: Gateway) -> None:
    client = key(gateway)
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(LINES)), purpose="batch")
    wire = client.files.with_raw_response.retrieve(uploaded.id).http_response.json()
    assert_openai_shape(wire, "OpenAIFile")
    listing = client.files.with_raw_response.list().http_response.json()
    assert_openai_shape(listing, "ListFilesResponse")
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        len(LINES),
        "input.jsonl",
        "batch",
    )
    assert uploaded.expires_at is not None and uploaded.expires_at > uploaded.created_at
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).read() == LINES
    listed = client.files.list(purpose="batch")
    assert [f.id for f in listed.data] == [uploaded.id]
    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_large_files_round_trip_in_sealed_chunks(gateway: Gateway) -> None:
    client = key(gateway)
    blob = secrets.token_bytes(2_500_000)  # three chunks
    uploaded = client.files.create(file=("big.bin", io.BytesIO(blob)), purpose="user_data")
    assert client.files.content(uploaded.id).read() == blob
    database = Path(next(gateway.log_path.parent.glob("data")) / "chatgate.db")
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT key_id, ciphertext FROM file_chunks WHERE file_id = ? ORDER BY seq",
            (uploaded.id,),
        ).fetchall()
    assert [r[0] for r in rows] == ["k1", "k1", "k1"]
    assert blob[:4096] not in b"".join(r[1] for r in rows)  # sealed at rest


def test_files_belong_to_their_key_and_owner(gateway: Gateway) -> None:
    alice, alice_team, mallory = key(gateway, "team-a"), key(gateway, "team-a"), key(gateway)
    mine = alice.files.create(file=("a.jsonl", io.BytesIO(LINES)), purpose="batch")
    assert alice_team.files.retrieve(mine.id).id == mine.id  # same owner
    for attempt in (
        lambda: mallory.files.retrieve(mine.id),
        lambda: mallory.files.content(mine.id),
        lambda: mallory.files.delete(mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert mine.id not in [f.id for f in mallory.files.list().data]
    assert alice.files.retrieve(mine.id).id == mine.id  # still there


def test_pagination(gateway: Gateway) -> None:
    client = key(gateway)
    ids = [
        client.files.create(file=(f"{i}.txt", io.BytesIO(b"x")), purpose="user_data").id
        for i in range(5)
    ]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more
    seen = [f.id for f in client.files.list(limit=2)]  # the SDK follows `after` pages
    assert seen == ids[::-1]
    ascending = client.files.list(limit=10, order="asc")
    assert [f.id for f in ascending.data] == ids


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"purpose": "batch"}, "file"),
        ({"file": ("a.txt", b"x")}, "purpose"),
        ({"file": ("a.txt", b"x"), "purpose": "batch_output"}, "purpose"),
        (
            {
                "file": ("a.txt", b"x"),
                "purpose": "batch",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "10",
            },
            "expires_after.seconds",
        ),
        ({"file": ("big.bin", b"x" * 3_000_001), "purpose": "batch"}, "file"),
    ],
)
def test_bad_uploads_are_clear_errors(gateway: Gateway, fields: dict[str, Any], param: str) -> None:
    boundary = "chatgate-test-boundary"
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{value[0]}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                + value[1]
                + b"\r\n"
            )
        else:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    response = raw(
        f"{gateway.base_url}/files",
        method="POST",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **ADMIN},
    )
    too_large = "big.bin" in str(fields.get("file"))
    assert response.status == (413 if too_large else 400), response.body
    assert response.json()["error"]["param"] == param
    plain = post_json(f"{gateway.base_url}/files", {"purpose": "batch"}, **ADMIN)
    assert plain.status == 400 and plain.json()["error"]["code"] == "invalid_content_type"
