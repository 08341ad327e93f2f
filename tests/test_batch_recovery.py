"""Exactly once under faults: a server SIGKILLed mid-batch and restarted (SQLite), and two
``chatgate worker`` processes sharing a batch on PostgreSQL, one of them SIGKILLed: every line's
result lands once, no line is lost or doubled, and usage is counted once."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import openai
import psutil
import pytest

from tests.fake_upstream import FakeUpstream
from tests.services import postgres_database
from tests.support import MASTER, Gateway, start_gateway

pytestmark = pytest.mark.slow
LINES = 60
QUICK = 15
"""The first lines go to a model that answers in 0.15 s, the rest to one that may hang."""


def config(upstream: FakeUpstream, *, hang: bool = False, **batches: Any) -> str:
    def model(name: str, upstream_model: str) -> dict[str, str]:
        return {
            "name": name,
            "provider": "openai_compat",
            "base_url": upstream.base_url,
            "upstream_model": upstream_model,
        }

    return json.dumps(
        {
            "batches": {"poll_interval": 0.05, "concurrency": 6, "lease_seconds": 2, **batches},
            "models": [
                model("slow", "sleep-0.15-echo"),
                model("later", "sleep-60-echo" if hang else "sleep-0.15-echo"),
            ],
        }
    )


def submit(server: Gateway) -> tuple[openai.OpenAI, str, int]:
    client = openai.OpenAI(base_url=server.base_url, api_key=MASTER, max_retries=0)
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "slow" if i < QUICK else "later",
                "messages": [{"role": "user", "content": f"number {i} " * 3}],
            },
        }
        for i in range(LINES)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    source = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    tokens = LINES * 2 * len(("number 0 " * 3).split())  # the fake upstream counts words
    return client, batch.id, tokens


def progress(client: openai.OpenAI, batch_id: str) -> tuple[str, int]:
    batch = client.batches.retrieve(batch_id)
    return batch.status, batch.request_counts.completed if batch.request_counts else 0


def wait_until(check: Any, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling the batch, bounded


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its children (granian's workers), as a crash would."""
    process = psutil.Process(pid)
    for member in [*process.children(recursive=True), process]:
        member.send_signal(signal.SIGKILL)
    psutil.wait_procs([process], timeout=10)


def assert_exactly_once(client: openai.OpenAI, batch_id: str, tokens: int) -> None:
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (LINES, 0)
    assert batch.output_file_id is not None
    output = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == sorted(f"line-{i}" for i in range(LINES))
    assert batch.usage is not None and batch.usage.total_tokens == tokens  # billed once


def test_a_sigkilled_server_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    upstream.start()
    env = {"CHATGATE_MASTER_KEY": MASTER}
    # the first server's later lines hang upstream, so the kill always finds lines mid-flight
    first = start_gateway(tmp_path, config=config(upstream, hang=True), env=env)
    try:
        client, batch_id, tokens = submit(first)
        wait_until(lambda: progress(client, batch_id)[1] >= QUICK)
        kill_tree(first.process.pid)
        with sqlite3.connect(tmp_path / "data" / "chatgate.db") as db:
            (running,) = db.execute(
                "SELECT count(*) FROM batch_items WHERE batch_id = ? AND state = 'running'",
                (batch_id,),
            ).fetchone()
        assert running > 0  # the crash left lines mid-flight, leased to a dead runner
        second = start_gateway(tmp_path, config=config(upstream), env=env)
        try:
            client = openai.OpenAI(base_url=second.base_url, api_key=MASTER, max_retries=0)
            wait_until(lambda: progress(client, batch_id)[0] == "completed")
            assert_exactly_once(client, batch_id, tokens)
            with sqlite3.connect(tmp_path / "data" / "chatgate.db") as db:
                (retried,) = db.execute(
                    "SELECT count(*) FROM batch_items WHERE batch_id = ? AND attempts > 1",
                    (batch_id,),
                ).fetchone()
            assert retried >= running  # those lines were answered again, and counted once
        finally:
            second.stop()
    finally:
        if first.process.poll() is None:
            kill_tree(first.process.pid)
        upstream.stop()


def _worker(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("wb")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    child_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "chatgate", "worker", "--config", str(tmp_path / "worker.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env,
    )


def test_two_workers_on_postgresql_share_a_batch_and_survive_a_sigkill(
    tmp_path: Path, postgres_admin: str
) -> None:
    upstream = FakeUpstream()
    upstream.start()
    with postgres_database(postgres_admin) as url:
        env = {
            "CHATGATE_MASTER_KEY": MASTER,
            "CHATGATE_STORE__URL": url,
            "CHATGATE_DATA_DIR": str(tmp_path / "data"),
        }
        (tmp_path / "worker.json").write_text(config(upstream))
        api = start_gateway(tmp_path / "api", config=config(upstream, runner="off"), env=env)
        workers = [_worker(tmp_path, f"w{i}", env) for i in range(2)]
        try:
            client, batch_id, tokens = submit(api)
            wait_until(lambda: progress(client, batch_id)[1] >= 15)
            kill_tree(workers[0].pid)  # one worker dies holding leases
            wait_until(lambda: progress(client, batch_id)[0] == "completed")
            assert_exactly_once(client, batch_id, tokens)
            owners = asyncio.run(_lease_owners(url, batch_id))
            assert len(owners) == 2, owners  # both workers committed lines
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
                    worker.wait(20)
            api.stop()
            upstream.stop()


async def _lease_owners(url: str, batch_id: str) -> set[str]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch(
            "SELECT DISTINCT lease_owner FROM batch_items WHERE batch_id = $1", batch_id
        )
    finally:
        await connection.close()
    return {r["lease_owner"] for r in rows}
