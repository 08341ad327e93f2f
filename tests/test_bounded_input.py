"""Bounded input: a body larger than its route allows is refused with 413 in OpenAI's shape — by
its declared length before it is read, or as it arrives when it declares none; an upload is
bounded by ``files.max_bytes`` and nothing of it is kept; a client that leaves mid-upload is logged
as a disconnect, not a failure; and tokenizing a large prompt does not stall other requests."""

from __future__ import annotations

import asyncio
import io
import json
import select
import socket
import time
from collections.abc import Iterable, Iterator

import aiohttp
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, post_json, start_gateway, wait_healthy

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def small(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = f"""
server: {{max_body_bytes: {MIB}}}
files: {{max_bytes: {MIB}}}
models:
  - {{name: echo, provider: openai_compat, base_url: '{upstream.base_url}'}}
"""
    server = start_gateway(tmp_path_factory.mktemp("bounded"), config=config)
    yield server
    server.stop()


def _assert_413(status: int, body: bytes, code: str = "request_too_large") -> None:
    assert status == 413, body[:200]
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", code)


def _chat_of(size: int) -> dict[str, object]:
    return {"model": "echo", "messages": [{"role": "user", "content": "x" * size}]}


def _exchange(gateway: Gateway, head: str, body: Iterable[bytes] = ()) -> tuple[int, bytes]:
    """Send a request's head, then its body piece by piece until the server answers (a server
    refusing a body answers before it is all sent, and may close); the status and body."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=60) as connection:
        connection.sendall(head.encode())
        for piece in body:
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                break  # the answer came: stop sending
            try:
                connection.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # it stopped reading and closed: its answer is already on the way
        received = b""
        while b"\r\n\r\n" not in received or len(received) < _length(received):
            piece = connection.recv(65536)
            if not piece:
                break
            received += piece
    status = int(received.split(b" ", 2)[1])
    return status, received.split(b"\r\n\r\n", 1)[1]


def _length(received: bytes) -> int:
    head, _, _ = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":", 1)[1])
    return 1 << 62


def _head(path: str, content_type: str, length: int | None) -> str:
    size = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{size}\r\n\r\n"
    )


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    small: Gateway,
) -> None:
    # Only the head is sent: the answer comes without a byte of the body.
    status, body = _exchange(small, _head("/v1/chat/completions", "application/json", 2 * MIB))
    _assert_413(status, body)
    status, body = _exchange(small, _head("/v1/files", "multipart/form-data; boundary=b", 3 * MIB))
    _assert_413(status, body)
    assert post_json(f"{small.base_url}/chat/completions", _chat_of(1000)).status == 200


def _chunks(payload: bytes) -> Iterator[bytes]:
    for start in range(0, len(payload), 64 * 1024):
        piece = payload[start : start + 64 * 1024]
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_body_without_a_declared_length_is_refused_as_it_passes_the_limit(
    small: Gateway,
) -> None:
    head = _head("/v1/chat/completions", "application/json", None)
    status, body = _exchange(small, head, _chunks(json.dumps(_chat_of(2 * MIB)).encode()))
    _assert_413(status, body)
    status, _ = _exchange(small, head, _chunks(json.dumps(_chat_of(1000)).encode()))
    assert status == 200


def test_a_file_over_files_max_bytes_is_refused_and_nothing_is_kept(small: Gateway) -> None:
    client = openai.OpenAI(base_url=small.base_url, api_key="unused", max_retries=0)
    before = {f.id for f in client.files.list()}
    # Just over the file limit, within the form's room: read, refused as the file is stored.
    with pytest.raises(openai.APIStatusError) as over:
        client.files.create(file=("over.txt", io.BytesIO(b"a" * (MIB + 10))), purpose="user_data")
    _assert_413(over.value.status_code, over.value.response.content, "file_too_large")
    assert {f.id for f in client.files.list()} == before
    assert client.files.create(file=("ok.txt", io.BytesIO(b"fits")), purpose="user_data").id


def test_a_client_leaving_mid_upload_is_logged_as_a_disconnect(small: Gateway) -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", small.port)) as connection:
        connection.sendall(
            (
                "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + 512 * 1024}\r\n\r\n"
            ).encode()
            + head
            + b"a" * 4096
        )
    log = small.log_with("client disconnected")
    assert "client disconnected" in log
    assert "unhandled error" not in log
    wait_healthy(small)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(tmp_path_factory.mktemp("bounded-embedded"))
    yield server
    server.stop()


async def _health_while_tokenizing(gateway: Gateway) -> tuple[float, float, int]:
    """Seconds a large chat request took, the longest ``/health`` took while it ran (asked
    again and again until it ends), and the large request's status."""
    prompt = "lorem ipsum dolor sit amet, " * 200_000  # 5.6 MB: tokenized for seconds
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": prompt}]}
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()

        async def large() -> int:
            async with session.post(f"{gateway.base_url}/chat/completions", json=body) as answer:
                await answer.read()
                return answer.status

        task = asyncio.ensure_future(large())
        slowest = 0.0
        while not task.done():  # no answer yet: the server is reading and working on the prompt
            asked = time.monotonic()
            async with session.get(f"{gateway.url}/health") as health:
                assert health.status == 200
            slowest = max(slowest, time.monotonic() - asked)
        status = await task
        return time.monotonic() - started, slowest, status


def test_tokenizing_a_large_prompt_leaves_the_server_responsive(embedded: Gateway) -> None:
    large_s, health_s, status = asyncio.run(_health_while_tokenizing(embedded))
    assert status == 400  # far more than the model's context window
    # Without the tokenizer off the event loop, one health check waits for most of it.
    assert health_s < large_s / 4, (health_s, large_s)
