"""The authenticator answers from its cache: no store round trip per request in steady state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatgate.gateway.auth import Authenticator
from chatgate.gateway.tokens import TokenSigner
from chatgate.protocol import AuthenticationError
from chatgate.state import ApiKey, Database, KeySpec, KeyStore
from chatgate.state.token_uses import TokenUses

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingKeyStore(KeyStore):
    """The real store, counting lookups."""

    finds = 0

    async def find(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        self.finds += 1
        return await super().find(secret_hash)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingKeyStore]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    await database.upgrade()
    yield CountingKeyStore(database)
    await database.close()


def authenticator(store: KeyStore, database: Database) -> Authenticator:
    return Authenticator(
        store,
        TokenUses(database),
        TokenSigner(b"x" * 32, default_ttl=60, max_ttl=60),
        master_key="m" * 32,
        cache_ttl=30,
        poll_interval=60,
    )


async def test_steady_state_needs_one_lookup(store: CountingKeyStore) -> None:
    _, secret = await store.create(KeySpec(name="hot"), actor="t")
    auth = authenticator(store, store._db)
    for _ in range(100):
        principal = await auth.authenticate(f"Bearer {secret}", None)
        assert principal.kind == "key"
    assert store.finds == 1


async def test_unknown_keys_are_cached_too_until_keys_change(store: CountingKeyStore) -> None:
    auth = authenticator(store, store._db)
    unknown = "cg-" + "B" * 43
    for _ in range(20):
        with pytest.raises(AuthenticationError):
            await auth.authenticate(f"Bearer {unknown}", None)
    assert store.finds == 1
    auth.invalidate()
    with pytest.raises(AuthenticationError):
        await auth.authenticate(f"Bearer {unknown}", None)
    assert store.finds == 2
