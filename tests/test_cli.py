"""The ``chatgate`` CLI: keys, db, audit, and serve's refusals."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port, start_gateway


def cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        env={"CHATGATE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_creates_the_store(tmp_path: Path) -> None:
    result = cli(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "chatgate.db").exists()
    assert cli(tmp_path, "db", "upgrade").returncode == 0


def test_keys_lifecycle(tmp_path: Path) -> None:
    created = cli(
        tmp_path,
        "keys",
        "create",
        "--name",
        "ci 🚀",
        "--owner",
        "ops",
        "--model",
        "gpt-4o*",
        "--endpoint",
        "chat.completions",
        "--metadata",
        "env=prod",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["secret"].startswith("cg-")
    assert key["allowed_models"] == ["gpt-4o*"] and key["metadata"] == {"env": "prod"}
    listed = cli(tmp_path, "keys", "list")
    assert key["id"] in listed.stdout and key["secret"] not in listed.stdout
    shown = cli(tmp_path, "keys", "show", key["id"])
    assert "ci 🚀" in shown.stdout and "secret" not in shown.stdout
    rotated = cli(tmp_path, "keys", "rotate", key["id"], "--grace", "60")
    assert rotated.returncode == 0 and "cg-" in rotated.stdout
    assert cli(tmp_path, "keys", "revoke", key["id"]).returncode == 0
    assert key["id"] not in cli(tmp_path, "keys", "list").stdout
    assert key["id"] in cli(tmp_path, "keys", "list", "--all").stdout
    audit = cli(tmp_path, "audit", "--json")
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert actions == ["key.revoke", "key.rotate", "key.create"]
    assert all(json.loads(line)["actor"].startswith("cli:") for line in audit.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "show", "key_nope"], "no key with id key_nope"),
        (["keys", "revoke", "key_nope"], "no key with id key_nope"),
        (["keys", "rotate", "key_nope"], "no active key"),
        (["keys", "create", "--name", ""], "at least 1 character"),
        (["keys", "create", "--name", "x", "--endpoint", "nope"], "unknown endpoints"),
        (["keys", "create", "--name", "x", "--expires-in", "-1"], "greater than 0"),
    ],
)
def test_keys_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_the_network_without_a_master_key(tmp_path: Path) -> None:
    result = cli(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode != 0
    assert "without a master key" in result.stderr


def test_serve_refuses_a_short_master_key(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "serve", "--port", str(free_port()), env={"CHATGATE_MASTER_KEY": "short"}
    )
    assert result.returncode != 0
    assert "at least 16 characters" in result.stderr
    assert "short" not in result.stderr.replace("at least", "")


def test_serve_says_loudly_that_it_is_open(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path)
    try:
        assert "NO MASTER KEY" in gateway.log_with("NO MASTER KEY")
        assert gateway.log().count("NO MASTER KEY") == 1  # once, not by each process
    finally:
        gateway.stop()


LIGHT = "models:\n  - {name: echo, provider: openai_compat, base_url: 'http://127.0.0.1:9/v1'}\n"


def test_the_store_is_private_to_the_user_running_chatgate(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, LIGHT)
    try:
        data = tmp_path / "data"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in ("chatgate.db", "chatgate.db-wal", "chatgate.db-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        assert "can be read by other users" not in gateway.log()
    finally:
        gateway.stop()


def test_a_store_others_can_read_is_warned_about(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "chatgate.db").touch(mode=0o644)
    (data / "chatgate.db").chmod(0o644)
    gateway = start_gateway(tmp_path, LIGHT)
    try:
        log = gateway.log_with("can be read by other users")
        assert "WARNING: the store can be read by other users" in log
        assert f"{data} (drwxr-xr-x)" in log and "chatgate.db (-rw-r--r--)" in log
    finally:
        gateway.stop()


def test_serve_binds_a_host_given_by_name(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, LIGHT, args=("--host", "localhost"))
    gateway.stop()  # healthy at 127.0.0.1: `localhost` was resolved, not refused
