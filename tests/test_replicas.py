"""Two replicas on one PostgreSQL store: a key revoked through one is refused by the other within
a second. The CLI, working on the store directly, reaches running servers the same way."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services import postgres_database
from tests.support import MASTER, Gateway, raw, start_gateway
from tests.test_auth import create_key

pytestmark = pytest.mark.slow


def _wait_for_401(gateway: Gateway, secret: str, limit: float) -> float:
    """Seconds until ``gateway`` refuses ``secret`` (polling; fails past ``limit``)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        response = raw(f"{gateway.base_url}/models", headers={"Authorization": f"Bearer {secret}"})
        if response.status == 401:
            return time.monotonic() - started
        assert response.status == 200
        time.sleep(0.02)  # polling for the revocation to arrive, bounded
    raise AssertionError(f"still accepted after {limit}s")


def test_revocation_reaches_another_replica_within_a_second(
    tmp_path: Path, postgres_admin: str
) -> None:
    with postgres_database(postgres_admin) as url:
        env = {"CHATGATE_MASTER_KEY": MASTER, "CHATGATE_STORE__URL": url}
        first = start_gateway(tmp_path / "a", env=env)
        second = start_gateway(tmp_path / "b", env=env)
        try:
            key = create_key(first)
            ok = raw(
                f"{second.base_url}/models", headers={"Authorization": f"Bearer {key['secret']}"}
            )
            assert ok.status == 200  # created on one replica, valid on the other
            revoked = raw(
                f"{first.url}/admin/keys/{key['id']}",
                method="DELETE",
                headers={"Authorization": f"Bearer {MASTER}"},
            )
            assert revoked.status == 200
            assert _wait_for_401(second, key["secret"], limit=1.0) < 1.0
        finally:
            first.stop()
            second.stop()


def test_cli_revocation_reaches_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"CHATGATE_MASTER_KEY": MASTER}
    gateway = start_gateway(tmp_path, env=env)
    try:
        key = create_key(gateway)
        assert (
            raw(
                f"{gateway.base_url}/models", headers={"Authorization": f"Bearer {key['secret']}"}
            ).status
            == 200
        )
        result = subprocess.run(
            [sys.executable, "-m", "chatgate", "keys", "revoke", key["id"]],
            env={"CHATGATE_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert _wait_for_401(gateway, key["secret"], limit=1.0) < 1.0
    finally:
        gateway.stop()
