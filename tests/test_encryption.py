"""Encryption at rest of stored bodies: AES-GCM, key ids, rotation and re-encryption."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from chatgate.config import ConfigError, EncryptionConfig
from chatgate.state import BodyStore, Database, DecryptionError, Keyring, new_data_key
from chatgate.state.tables import StoredBodyRow

BODY = b'{"messages": [{"role": "user", "content": "my card is 4111 1111 1111 1111"}]}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def keyring(monkeypatch: pytest.MonkeyPatch, *ids: str) -> Keyring:
    keys = []
    for key_id in ids:
        variable = f"TEST_DATA_KEY_{key_id.upper()}"
        if variable not in os.environ:
            monkeypatch.setenv(variable, new_data_key())
        keys.append({"id": key_id, "key_env": variable})
    return Keyring.from_config(EncryptionConfig.model_validate({"keys": keys}))


async def rows(db: Database) -> list[StoredBodyRow]:
    async with db.session() as session:
        return list((await session.scalars(select(StoredBodyRow))).all())


@pytest.mark.anyio
async def test_bodies_are_encrypted_and_read_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BodyStore(db, keyring(monkeypatch, "k1"))
    await store.put("req_1", "request", BODY)
    (row,) = await rows(db)
    assert row.key_id == "k1"
    assert b"4111" not in row.ciphertext and BODY not in row.ciphertext
    assert await store.get("req_1") == {"request": BODY}


@pytest.mark.anyio
async def test_rotation_and_reencrypt(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await BodyStore(db, keyring(monkeypatch)).put("req_0", "request", b"before any key")
    await BodyStore(db, keyring(monkeypatch, "k1")).put("req_1", "request", BODY)
    rotated = BodyStore(db, keyring(monkeypatch, "k1", "k2"))
    await rotated.put("req_2", "response", b"newer")
    assert sorted(r.key_id for r in await rows(db)) == ["k1", "k2", "plain"]
    assert await rotated.get("req_1") == {"request": BODY}  # old records stay readable
    assert await rotated.reencrypt() == 2
    assert {r.key_id for r in await rows(db)} == {"k2"}
    only_new = BodyStore(db, keyring(monkeypatch, "k2"))
    assert await only_new.get("req_0") == {"request": b"before any key"}
    assert await only_new.get("req_1") == {"request": BODY}
    assert await only_new.reencrypt() == 0


@pytest.mark.anyio
async def test_tampering_and_unknown_keys_fail_loudly(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BodyStore(db, keyring(monkeypatch, "k1"))
    await store.put("req_1", "request", BODY)
    with pytest.raises(DecryptionError, match="no data key"):
        await BodyStore(db, keyring(monkeypatch, "k9")).get("req_1")
    async with db.session() as session:
        (row,) = (await session.scalars(select(StoredBodyRow))).all()
        flipped = bytes([row.ciphertext[0] ^ 1]) + row.ciphertext[1:]
        await session.execute(update(StoredBodyRow).values(ciphertext=flipped))
    with pytest.raises(DecryptionError, match="tampered"):
        await store.get("req_1")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([{"id": "a"}], "set `key_env` or `key_file`"),
        ([{"id": "plain", "key_env": "X_KEY"}], "reserved"),
        ([{"id": "a", "key_env": "X_KEY"}, {"id": "a", "key_env": "X_KEY"}], "duplicate"),
        ([{"id": "a", "key_env": "SHORT_KEY"}], "32 bytes"),
        ([{"id": "a", "key_env": "BAD_KEY"}], "base64"),
    ],
)
def test_bad_key_config_is_a_clear_error(
    keys: list[dict[str, str]], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X_KEY", new_data_key())
    monkeypatch.setenv("SHORT_KEY", base64.b64encode(b"short").decode())
    monkeypatch.setenv("BAD_KEY", "not base64 !!")
    with pytest.raises(ConfigError, match=message):
        Keyring.from_config(EncryptionConfig.model_validate({"keys": keys}))


def test_cli_reencrypt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    old_key = new_data_key()
    monkeypatch.setenv("TEST_K1", old_key)

    async def seed() -> None:
        database = Database(f"sqlite+aiosqlite:///{data / 'chatgate.db'}")
        await database.upgrade()
        one_key = {"keys": [{"id": "k1", "key_env": "TEST_K1"}]}
        keys = Keyring.from_config(EncryptionConfig.model_validate(one_key))
        await BodyStore(database, keys).put("req_1", "request", BODY)
        await database.close()

    asyncio.run(seed())
    config = tmp_path / "chatgate.yaml"
    config.write_text(
        "encryption:\n  keys:\n    - {id: k1, key_env: TEST_K1}\n    - {id: k2, key_env: TEST_K2}\n"
    )
    env = {
        "CHATGATE_DATA_DIR": str(data),
        "PATH": "/usr/bin:/bin",
        "TEST_K1": old_key,
        "TEST_K2": new_data_key(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", "keys", "reencrypt", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 records under data key k2" in result.stdout
    assert old_key not in result.stdout + result.stderr
