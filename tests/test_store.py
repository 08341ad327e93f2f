"""The state store's repositories, run on both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from chatgate.state import AuditLog, Database, KeySpec, KeyStore, hash_secret, looks_like_key
from chatgate.state.token_uses import TokenUses


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_create_stores_only_the_hash(db: Database) -> None:
    keys = KeyStore(db)
    key, secret = await keys.create(KeySpec(name="app"), actor="test")
    assert looks_like_key(secret) and secret.startswith("cg-")
    found = await keys.find(hash_secret(secret))
    assert found is not None and found[0].id == key.id and found[1] is None
    assert await keys.find(hash_secret(secret + "x")) is None
    async with db.session() as session:
        dump = str((await session.execute(text("SELECT * FROM api_key_secrets"))).all())
        dump += str((await session.execute(text("SELECT * FROM api_keys"))).all())
        dump += str((await session.execute(text("SELECT * FROM audit_log"))).all())
    assert secret not in dump


async def test_fields_round_trip_including_awkward_names(db: Database) -> None:
    keys = KeyStore(db)
    name = "O'Brien\"; DROP TABLE api_keys; -- 🚀"
    spec = KeySpec(
        name=name,
        owner="team-é",
        allowed_models=["gpt-4o*", "smollm2"],
        allowed_endpoints=["chat.completions"],
        expires_at=4_000_000_000.0,
        metadata={"cost_center": 42, "tags": ["a", "b"]},
    )
    key, _ = await keys.create(spec, actor="test")
    again = await keys.get(key.id)
    assert again == key
    assert again is not None and again.name == name
    assert again.allowed_models == ("gpt-4o*", "smollm2")
    assert again.metadata == {"cost_center": 42, "tags": ["a", "b"]}


async def test_revoke_removes_secrets_and_bumps_version(db: Database) -> None:
    keys = KeyStore(db)
    key, secret = await keys.create(KeySpec(name="r"), actor="test")
    version = await keys.version()
    revoked = await keys.revoke(key.id, actor="admin")
    assert revoked is not None and revoked.revoked_at is not None
    assert await keys.find(hash_secret(secret)) is None
    assert await keys.version() == version + 1
    assert await keys.changed_since(version) == [key.id]
    assert key.id not in [k.id for k in await keys.list_keys()]
    assert key.id in [k.id for k in await keys.list_keys(include_revoked=True)]
    assert await keys.revoke("key_missing", actor="admin") is None


async def test_rotation_keeps_old_secret_for_the_grace_period(db: Database) -> None:
    keys = KeyStore(db)
    key, old = await keys.create(KeySpec(name="rot"), actor="test")
    rotated = await keys.rotate(key.id, grace_seconds=3600, actor="test")
    assert rotated is not None
    _, new = rotated
    old_found = await keys.find(hash_secret(old))
    assert old_found is not None and old_found[1] is not None  # valid, with an end
    new_found = await keys.find(hash_secret(new))
    assert new_found is not None and new_found[1] is None
    again = await keys.rotate(key.id, grace_seconds=0, actor="test")
    assert again is not None
    assert await keys.find(hash_secret(old)) is None
    assert await keys.find(hash_secret(new)) is None
    assert await keys.find(hash_secret(again[1])) is not None


async def test_rotate_refuses_inactive_keys(db: Database) -> None:
    keys = KeyStore(db)
    key, _ = await keys.create(KeySpec(name="x"), actor="test")
    await keys.revoke(key.id, actor="test")
    assert await keys.rotate(key.id, grace_seconds=0, actor="test") is None


async def test_audit_records_actions_with_their_actor(db: Database) -> None:
    keys = KeyStore(db)
    key, _ = await keys.create(KeySpec(name="audited"), actor="alice")
    await keys.rotate(key.id, grace_seconds=5, actor="bob")
    await keys.revoke(key.id, actor="carol")
    entries = [e for e in await AuditLog(db).entries(limit=50) if e.target == key.id]
    assert [(e.actor, e.action) for e in entries] == [
        ("carol", "key.revoke"),
        ("bob", "key.rotate"),
        ("alice", "key.create"),
    ]
    assert entries[1].details == {"grace_seconds": 5}


async def test_last_used_is_recorded(db: Database) -> None:
    keys = KeyStore(db)
    key, _ = await keys.create(KeySpec(name="used"), actor="t")
    await keys.touch([(key.id, 1234.5)])
    again = await keys.get(key.id)
    assert again is not None and again.last_used_at == 1234.5


async def test_token_request_limit_is_atomic(db: Database) -> None:
    uses = TokenUses(db)
    results = await asyncio.gather(*(uses.consume("jti-1", 3, 4e9) for _ in range(8)))
    assert sorted(results) == [False] * 5 + [True] * 3
    assert await uses.consume("jti-2", 1, 4e9)
