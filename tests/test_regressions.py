"""Regression detection over the request log: the last window against a baseline."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatgate.gateway.regressions import find_regressions
from chatgate.state import Database
from chatgate.state.request_log import RequestLogStore, RequestRecord

NOW = 2_000_000_000.0


def record(
    at: float, *, model: str = "m", total_ms: float = 100, status: int = 200
) -> RequestRecord:
    return RequestRecord(
        request_id=f"req_{at}",
        at=at,
        key_id=None,
        owner=None,
        model=model,
        model_served=model,
        provider="openai_compat",
        status=status,
        error_type=None,
        prompt_tokens=100,
        completion_tokens=50,
        cached_tokens=0,
        cost=0.001,
        request_bytes=10,
        response_bytes=10,
        queue_ms=0,
        ttft_ms=None,
        upstream_ms=None,
        total_ms=total_ms,
        overhead_ms=None,
        cache=None,
        attempts=1,
        stream=False,
        priority="normal",
    )


async def _seed(path: Path, records: list[RequestRecord]) -> RequestLogStore:
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.upgrade()
    store = RequestLogStore(database)
    await store.insert(records)
    return store


def scenario(slow: bool, failing: bool) -> list[RequestRecord]:
    records = [record(NOW - 7200 + i * 60) for i in range(50)]  # the baseline hour before
    for i in range(40):  # the last hour
        latency = 400 if slow else 100
        status = 503 if failing and i % 4 == 0 else 200
        records.append(record(NOW - 3000 + i * 60, total_ms=latency, status=status))
    records += [record(NOW - 100, model="rare")]  # too few requests to judge
    return records


@pytest.mark.parametrize(("slow", "failing"), [(False, False), (True, False), (False, True)])
def test_findings(tmp_path: Path, slow: bool, failing: bool) -> None:
    async def go() -> dict[str, object]:
        store = await _seed(tmp_path / "log.db", scenario(slow, failing))
        return await find_regressions(store, window=3600, baseline=3600, now=NOW)

    report = asyncio.run(go())
    metrics = {f["metric"] for f in report["regressions"]}  # type: ignore[attr-defined]
    assert ("p95_ms" in metrics) == slow
    assert ("error_rate" in metrics) == failing
    assert report["models"]["rare"]["comparable"] is False  # type: ignore[index]


def test_cli_exit_code(tmp_path: Path) -> None:
    now = time.time()
    records = [dataclasses.replace(r, at=r.at - NOW + now) for r in scenario(True, False)]
    asyncio.run(_seed(tmp_path / "data" / "chatgate.db", records))
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", "usage", "regressions", "--baseline", "3600"],
        env={"CHATGATE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "REGRESSION m: p95_ms" in result.stdout
