"""The Batch API end to end with the official SDK: files in, batches through their lifecycle,
output and error files in OpenAI's shapes, validation that loads nothing half-way, ownership,
cancellation, and moderation and embeddings batches."""

from __future__ import annotations

import io
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, assert_openai_shape, post_json, raw, start_gateway

ADMIN = {"Authorization": f"Bearer {MASTER}"}
GOOD = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    fake.start()
    config = {
        "batches": {"poll_interval": 0.05, "concurrency": 8},
        "models": [
            {
                "name": "echo",
                "provider": "openai_compat",
                "base_url": fake.base_url,
                "pricing": {"input": 1000, "output": 1000},  # USD per 1M tokens
            },
            {
                "name": "slow",
                "provider": "openai_compat",
                "base_url": fake.base_url,
                "upstream_model": "sleep-0.3-echo",
            },
        ],
        "embedding_models": [
            {
                "name": "text-embedding-3-small",
                "provider": "openai_compat",
                "base_url": fake.base_url,
            }
        ],
    }
    server = start_gateway(
        tmp_path_factory.mktemp("batches"),
        config=json.dumps(config),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    yield server, fake
    server.stop()
    fake.stop()


def client_for(server: Gateway, owner: str | None = None) -> openai.OpenAI:
    spec: dict[str, Any] = {"name": secrets.token_hex(3)}
    if owner:
        spec["owner"] = owner
    secret = post_json(f"{server.url}/admin/keys", spec, **ADMIN).json()["secret"]
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)


def jsonl(lines: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())


def chat_line(custom_id: str, text: str, model: str = "echo", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def wait_for(client: openai.OpenAI, batch_id: str, states: set[str], limit: float = 60) -> Any:
    deadline = time.monotonic() + limit
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in states or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)  # polling the batch's status, bounded


def test_a_batch_end_to_end(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    client = client_for(server)
    lines = [chat_line(f"req-{i}", f"answer {i} please") for i in range(20)]
    lines.append(chat_line("bad-1", "x", messages=[]))  # invalid body: an error line
    lines.append(chat_line("bad-2", "x", model="no-such-model"))
    source = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.status == "validating" and batch.metadata == {"job": "nightly"}
    done = wait_for(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", done
    wire = client.batches.with_raw_response.retrieve(batch.id).http_response.json()
    assert_openai_shape(wire, "Batch")
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (22, 20)
    assert done.request_counts.failed == 2
    for stamp in ("created_at", "in_progress_at", "finalizing_at", "completed_at"):
        assert getattr(done, stamp) is not None
    assert done.output_file_id and done.error_file_id
    output = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == sorted(f"req-{i}" for i in range(20))
    first = next(o for o in output if o["custom_id"] == "req-3")
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "answer 3 please"
    assert first["id"].startswith("batch_req_") and first["error"] is None
    errors = {
        e["custom_id"]: e
        for e in map(json.loads, client.files.content(done.error_file_id).text.splitlines())
    }
    assert errors["bad-1"]["response"]["status_code"] == 400
    assert errors["bad-2"]["response"]["status_code"] == 404
    assert errors["bad-2"]["response"]["body"]["error"]["code"] == "model_not_found"
    usage = wire["usage"]
    expected = sum(2 * len(line["body"]["messages"][0]["content"].split()) for line in lines[:20])
    assert usage["total_tokens"] == expected  # every line counted once
    with sqlite3.connect(server.log_path.parent / "data" / "chatgate.db") as db:
        (cost,) = db.execute("SELECT cost FROM batches WHERE id = ?", (batch.id,)).fetchone()
    assert cost == pytest.approx(expected * 1000 / 1e6)  # every line's cost, once
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    listed = client.batches.list()
    assert [b.id for b in listed.data] == [batch.id]
    assert_openai_shape(
        client.batches.with_raw_response.list().http_response.json(), "ListBatchesResponse"
    )


@pytest.mark.parametrize(
    ("content", "code", "line"),
    [
        (
            GOOD + b"not json\n",
            "invalid_json_line",
            2,
        ),
        (
            b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
            * 2,
            "duplicate_custom_id",
            2,
        ),
        (
            b'{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n',
            "invalid_method",
            1,
        ),
        (
            b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}\n',
            "mismatched_endpoint",
            1,
        ),
        (b"\n", "empty_file", 1),
    ],
)
def test_bad_input_fails_the_batch_with_line_errors(
    gateway: tuple[Gateway, FakeUpstream], content: bytes, code: str, line: int
) -> None:
    server, _ = gateway
    client = client_for(server)
    source = client.files.create(file=("in.jsonl", io.BytesIO(content)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = wait_for(client, batch.id, {"failed", "completed"})
    assert failed.status == "failed"
    assert failed.errors is not None and failed.errors.data
    assert (failed.errors.data[0].code, failed.errors.data[0].line) == (code, line)
    assert failed.request_counts is not None and failed.request_counts.total == 0  # nothing loaded


def test_batches_and_their_files_belong_to_their_key(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    owner, stranger = client_for(server), client_for(server)
    source = owner.files.create(file=("in.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    with pytest.raises(openai.NotFoundError):  # someone else's input file
        stranger.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    batch = owner.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for(owner, batch.id, {"completed"})
    assert done.output_file_id is not None
    with pytest.raises(openai.NotFoundError):
        stranger.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.files.content(done.output_file_id)
    assert stranger.batches.list().data == []


def test_bad_requests(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    client = client_for(server)
    text = client.files.create(file=("a.txt", io.BytesIO(b"x")), purpose="user_data")
    for body, param in (
        (
            {
                "input_file_id": text.id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            "input_file_id",
        ),
        (
            {"input_file_id": text.id, "endpoint": "/v1/completions", "completion_window": "24h"},
            "endpoint",
        ),
        (
            {
                "input_file_id": text.id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "1h",
            },
            "completion_window",
        ),
    ):
        response = post_json(
            f"{server.base_url}/batches", body, Authorization=f"Bearer {client.api_key}"
        )
        assert response.status == 400, response.body
        assert response.json()["error"]["param"] == param


def test_cancel_keeps_what_finished(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    client = client_for(server)
    lines = [chat_line(f"s-{i}", f"slow {i}", model="slow") for i in range(40)]
    source = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 30
    while client.batches.retrieve(batch.id).request_counts.completed < 8:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling for progress, bounded
    partial = (
        raw(
            f"{server.base_url}/batches/{batch.id}/results?kind=output",
            headers={"Authorization": f"Bearer {client.api_key}"},
        )
        .body.decode()
        .splitlines()
    )
    assert 8 <= len(partial) < 40  # readable while the batch runs
    assert all(json.loads(x)["response"]["status_code"] == 200 for x in partial)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    cancelled = wait_for(client, batch.id, {"cancelled"})
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    counts = cancelled.request_counts
    assert counts is not None and 8 <= counts.completed < 40
    assert cancelled.output_file_id is not None
    output = client.files.content(cancelled.output_file_id).text.splitlines()
    assert len(output) == counts.completed
    with pytest.raises(openai.ConflictError):
        client.batches.cancel((wait_for(client, _done_batch(client), {"completed"})).id)


def _done_batch(client: openai.OpenAI) -> str:
    source = client.files.create(file=("in.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    return client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def test_a_moderation_batch(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    client = client_for(server)
    lines = [
        {
            "custom_id": "calm",
            "method": "POST",
            "url": "/v1/moderations",
            "body": {"input": "Write a haiku about rain."},
        },
        {
            "custom_id": "threat",
            "method": "POST",
            "url": "/v1/moderations",
            "body": {"input": "I will hurt you and your family."},
        },
    ]
    source = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/moderations", completion_window="24h"
    )
    done = wait_for(client, batch.id, {"completed"})
    assert done.output_file_id is not None
    results = {
        o["custom_id"]: o["response"]["body"]["results"][0]["flagged"]
        for o in map(json.loads, client.files.content(done.output_file_id).text.splitlines())
    }
    assert results == {"calm": False, "threat": True}


def embedding_line(custom_id: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", **body},
    }


def test_an_embeddings_batch(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    client = client_for(server)
    lines = [
        embedding_line("one", input="the first text"),
        embedding_line("many", input=["alpha beta", "gamma"]),
        embedding_line("packed", input="base64 please", encoding_format="base64"),
        embedding_line("unknown", input="x", model="no-such-embedder"),
    ]
    source = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_for(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)
    assert done.output_file_id is not None and done.error_file_id is not None
    answers = {
        o["custom_id"]: o["response"]
        for o in map(json.loads, client.files.content(done.output_file_id).text.splitlines())
    }
    assert {a["status_code"] for a in answers.values()} == {200}
    for custom_id in ("one", "many"):  # OpenAI's schema knows float vectors only, not base64
        assert_openai_shape(answers[custom_id]["body"], "CreateEmbeddingResponse")
    assert [len(answers[c]["body"]["data"]) for c in ("one", "many", "packed")] == [1, 2, 1]
    assert answers["one"]["body"]["usage"]["prompt_tokens"] == 3
    assert isinstance(answers["packed"]["body"]["data"][0]["embedding"], str)  # base64
    (failed,) = map(json.loads, client.files.content(done.error_file_id).text.splitlines())
    assert failed["custom_id"] == "unknown"
    assert failed["response"]["status_code"] == 404


def test_an_embeddings_batch_holds_at_most_50000_inputs(
    gateway: tuple[Gateway, FakeUpstream],
) -> None:
    server, _ = gateway
    client = client_for(server)
    lines = [embedding_line("huge", input=["w"] * 50_000), embedding_line("one", input="more")]
    source = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_for(client, batch.id, {"completed", "failed"})
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert [e.code for e in done.errors.data] == ["too_many_inputs"]


def cli(server: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    env["CHATGATE_API_KEY"] = MASTER
    return subprocess.run(
        [sys.executable, "-m", "chatgate", "batch", "--base-url", server.base_url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_submit_wait_status_download(
    gateway: tuple[Gateway, FakeUpstream], tmp_path: Path
) -> None:
    server, _ = gateway
    source = tmp_path / "requests.jsonl"
    source.write_text("".join(json.dumps(chat_line(f"c{i}", f"cli {i}")) + "\n" for i in range(5)))
    submitted = cli(server, "submit", str(source), "--wait", "--metadata", "team=nlp")
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("batch_") and "5 completed, 0 failed of 5" in submitted.stderr
    assert "completed" in cli(server, "status", batch_id).stdout
    assert json.loads(cli(server, "status", batch_id, "--json").stdout)["metadata"] == {
        "team": "nlp"
    }
    target = tmp_path / "out.jsonl"
    assert cli(server, "download", batch_id, "-o", str(target)).returncode == 0
    assert len(target.read_text().splitlines()) == 5
    missing = cli(server, "download", batch_id, "--errors")
    assert missing.returncode == 1 and "no error file: it completed" in missing.stderr
    refused = cli(server, "cancel", batch_id)
    assert refused.returncode == 1 and "409" in refused.stderr


def test_a_batch_past_its_window_expires(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    client = client_for(server)
    lines = [chat_line(f"e-{i}", f"slow {i}", model="slow") for i in range(40)]
    source = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 30
    while client.batches.retrieve(batch.id).request_counts.completed < 4:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling for progress, bounded
    with sqlite3.connect(server.log_path.parent / "data" / "chatgate.db") as db:
        db.execute("UPDATE batches SET expires_at = 0 WHERE id = ?", (batch.id,))  # a day passes
    expired = wait_for(client, batch.id, {"expired"})
    assert expired.status == "expired" and expired.expired_at is not None
    counts = expired.request_counts
    assert counts is not None and counts.completed + counts.failed == 40 and counts.failed > 0
    assert expired.error_file_id is not None
    errors = [json.loads(x) for x in client.files.content(expired.error_file_id).text.splitlines()]
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert len(errors) == counts.failed
