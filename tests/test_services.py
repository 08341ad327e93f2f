"""The fallbacks that let the suite run where PostgreSQL or Redis is not installed: throwaway
servers from the dev lock's PyPI packages work for what the tests need of them (the store's
migrations, pgvector for retrieval, the Redis limiter's Lua)."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from chatgate.config import RedisConfig
from chatgate.limits import RedisLimiter, ScopeLimit
from chatgate.redis_client import RedisClients
from chatgate.state import Database
from tests.services import postgres_database, throwaway_postgres, throwaway_redis


def test_throwaway_postgres_runs_the_store_and_pgvector() -> None:
    with throwaway_postgres() as admin, postgres_database(admin) as url:

        async def check() -> str:
            database = Database(url)
            await database.upgrade()
            await database.close()
            connection = await asyncpg.connect(url.replace("+asyncpg", ""))
            try:
                assert await connection.fetchval("SELECT count(*) FROM api_keys") == 0
                await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
                distance = await connection.fetchval("SELECT '[1,0]'::vector <-> '[0,1]'::vector")
            finally:
                await connection.close()
            return f"{distance:.4f}"

        assert asyncio.run(check()) == "1.4142"


def test_throwaway_redis_runs_the_limiter() -> None:
    with throwaway_redis() as url:

        async def check() -> list[bool]:
            clients = RedisClients(RedisConfig())
            limiter = RedisLimiter(clients.get(url), prefix=f"t{secrets.token_hex(4)}")
            try:
                scope = ScopeLimit("s", rpm=1)
                first = await limiter.acquire("a", [scope], 1, 30)
                second = await limiter.acquire("b", [scope], 1, 30)
            finally:
                await clients.close()
            return [first.admitted, second.admitted]

        assert asyncio.run(check()) == [True, False]
