"""Optional body logging: request and response bodies stored sealed (AES-GCM) off the request
path, readable by an admin, unreadable in the store itself."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatgate.state import new_data_key
from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, post_json, raw, start_gateway

PHRASE = "the parcel code is 7731-TANGO"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fake = FakeUpstream()
    fake.start()
    config = f"""
observability: {{log_bodies: true, flush_interval: 0.1}}
encryption:
  keys: [{{id: k1, key_env: TEST_BODY_KEY}}]
models:
  - {{name: echo, provider: openai_compat, base_url: "{fake.base_url}"}}
"""
    server = start_gateway(
        tmp_path_factory.mktemp("bodies"),
        config=config,
        env={"CHATGATE_MASTER_KEY": MASTER, "TEST_BODY_KEY": new_data_key()},
    )
    yield server
    server.stop()
    fake.stop()


def stored(gateway: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        response = raw(
            f"{gateway.url}/admin/requests/{request_id}/bodies",
            headers={"Authorization": f"Bearer {MASTER}"},
        )
        if response.status == 200 or time.monotonic() > deadline:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.1)  # polling for the batched write, bounded


@pytest.mark.parametrize("stream", [False, True])
def test_bodies_are_stored_sealed_and_readable_by_admins(gateway: Gateway, stream: bool) -> None:
    answer = post_json(
        f"{gateway.base_url}/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": PHRASE}], "stream": stream},
        Authorization=f"Bearer {MASTER}",
    )
    assert answer.status == 200
    request_id = answer.headers["x-request-id"]
    bodies = stored(gateway, request_id)
    assert PHRASE in bodies["request"]
    assert "7731-TANGO" in bodies["response"]
    database = gateway.log_path.parent / "data" / "chatgate.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT key_id, ciphertext FROM stored_bodies WHERE request_id = ?", (request_id,)
        ).fetchall()
    assert {row[0] for row in rows} == {"k1"}
    assert all(b"7731-TANGO" not in row[1] for row in rows)


def test_unknown_request_is_404(gateway: Gateway) -> None:
    response = raw(
        f"{gateway.url}/admin/requests/req_nope/bodies",
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    assert response.status == 404
