"""Migrations that replicas can share: several processes migrating one empty database at once all
succeed (PostgreSQL: an advisory lock; SQLite: a file lock), `serve` refuses a schema newer than it
knows, and with `store.migrate_on_start: false` it refuses an unmigrated store until
`chatgate db upgrade` has run."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chatgate.state.db import Database
from tests.services import postgres_database
from tests.support import MASTER, start_gateway, wait_healthy
from tests.test_cli import cli

PROCESSES = 4


def _upgrade_after(barrier: Any, url: str) -> None:
    barrier.wait(60)  # every process starts migrating at the same moment

    async def go() -> None:
        database = Database(url)
        try:
            await database.upgrade()
        finally:
            await database.close()

    asyncio.run(go())


def _migrate_at_once(url: str) -> list[int | None]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_upgrade_after, args=(barrier, url)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return [worker.exitcode for worker in workers]


async def _schema_is_current(url: str) -> bool:
    database = Database(url)
    try:
        return (await database.schema()).up_to_date
    finally:
        await database.close()


def test_processes_migrating_one_empty_postgresql_database_at_once_all_succeed(
    postgres_admin: str,
) -> None:
    with postgres_database(postgres_admin) as url:
        assert _migrate_at_once(url) == [0] * PROCESSES
        assert asyncio.run(_schema_is_current(url))


def test_processes_migrating_one_empty_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    assert _migrate_at_once(url) == [0] * PROCESSES
    assert asyncio.run(_schema_is_current(url))


def _light_config(tmp_path: Path) -> str:
    """No embedded chat model to load: replicas start in seconds."""
    return (
        "models:\n  - name: echo\n    provider: openai_compat\n"
        "    base_url: http://127.0.0.1:9/v1\n"
    )


@pytest.mark.slow
def test_three_replicas_started_at_once_on_an_empty_postgresql_database_all_come_up(
    tmp_path: Path, postgres_admin: str
) -> None:
    with postgres_database(postgres_admin) as url:
        env = {"CHATGATE_MASTER_KEY": MASTER, "CHATGATE_STORE__URL": url}
        config = _light_config(tmp_path)
        replicas = [
            start_gateway(tmp_path / f"r{i}", config, env=env, ready=False) for i in range(3)
        ]
        try:
            for replica in replicas:
                wait_healthy(replica)
        finally:
            for replica in replicas:
                replica.stop()
        assert asyncio.run(_schema_is_current(url))


def _stamp_future(tmp_path: Path) -> None:
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "data" / "chatgate.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")


def test_serve_and_db_upgrade_refuse_a_schema_newer_than_they_know(tmp_path: Path) -> None:
    _stamp_future(tmp_path)
    for args in (("db", "upgrade"), ("serve", "--config", str(tmp_path / "c.yaml"))):
        (tmp_path / "c.yaml").write_text(_light_config(tmp_path))
        result = cli(tmp_path, *args)
        assert result.returncode == 1, result.stderr
        assert "schema revision 9999_from_the_future, newer than this chatgate knows" in (
            result.stderr
        )
        assert "Traceback" not in result.stderr


def test_with_migrations_off_serve_waits_for_db_upgrade(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(_light_config(tmp_path) + "store:\n  migrate_on_start: false\n")
    refused = cli(tmp_path, "serve", "--config", str(config))
    assert refused.returncode == 1
    assert "run `chatgate db upgrade` first" in refused.stderr
    assert "Traceback" not in refused.stderr
    upgraded = cli(tmp_path, "db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "store is up to date (schema " in upgraded.stdout
    start_gateway(tmp_path, config.read_text()).stop()  # healthy once migrated
