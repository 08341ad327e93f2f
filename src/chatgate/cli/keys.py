"""``chatgate keys``: virtual keys, on the store directly (running servers notice within 1 s)."""

from __future__ import annotations

import getpass
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from pydantic import ValidationError

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.config import ConfigError
from chatgate.preflight import store
from chatgate.protocol.admin import KeyCreateRequest
from chatgate.state import (
    ApiKey,
    BodyStore,
    Database,
    DecryptionError,
    Keyring,
    KeySpec,
    KeyStore,
    new_data_key,
)

__all__ = ["keys"]

T = TypeVar("T")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"[:64]


def _with_store(config_path: Path | None, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    settings = load_or_exit(config_path)

    async def go() -> T:
        database: Database = store(settings)
        try:
            await database.upgrade()
            return await action(KeyStore(database))
        finally:
            await database.close()

    return run(go())


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _show(key: ApiKey, secret: str | None = None) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", key.id),
        ("name", key.name),
        ("owner", key.owner or "-"),
        ("models", ", ".join(key.allowed_models) or "all"),
        ("endpoints", ", ".join(key.allowed_endpoints) or "all"),
        ("expires", _when(key.expires_at)),
        ("created", f"{_when(key.created_at)} by {key.created_by}"),
        ("last used", _when(key.last_used_at)),
        ("revoked", _when(key.revoked_at)),
        ("limits", orjson.dumps(key.limits).decode() if key.limits else "default"),
        ("priority", key.priority or "normal"),
    ]
    if key.metadata:
        rows.append(("metadata", orjson.dumps(key.metadata).decode()))
    for label, value in rows:
        click.echo(f"{label:>10}  {value}")
    if secret is not None:
        click.echo(f"{'secret':>10}  {secret}")
        click.echo("\nStore the secret now: it is shown only once.", err=True)


@click.group()
def keys() -> None:
    """Create, list, show, update, revoke and rotate virtual keys."""


@keys.command()
@config_option
@click.option("--name", required=True, help="What the key is for.")
@click.option("--owner", help="Owner or team.")
@click.option("--model", "models", multiple=True, help="Allowed model id or glob (repeatable).")
@click.option("--endpoint", "endpoints", multiple=True, help="Allowed endpoint scope (repeatable).")
@click.option("--expires-in", type=float, help="Seconds until the key expires.")
@click.option("--metadata", "metadata", multiple=True, help="key=value (repeatable).")
@click.option("--rpm", type=click.IntRange(1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(1), help="Tokens per minute.")
@click.option("--concurrent", type=click.IntRange(1), help="Requests in flight at once.")
@click.option(
    "--priority",
    type=click.Choice(["critical", "normal", "low"]),
    help="Highest priority the key may ask for.",
)
@click.option(
    "--queue-timeout", type=click.FloatRange(0, 600), help="Seconds to wait for capacity."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(
    *,
    config_path: Path | None,
    name: str,
    owner: str | None,
    models: tuple[str, ...],
    endpoints: tuple[str, ...],
    expires_in: float | None,
    metadata: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    concurrent: int | None,
    priority: str | None,
    queue_timeout: float | None,
    as_json: bool,
) -> None:
    """Create a key and print its secret (once)."""
    pairs = dict(item.partition("=")[::2] for item in metadata)
    limits = {"rpm": rpm, "tpm": tpm, "concurrent": concurrent}
    try:
        spec = KeyCreateRequest.model_validate(
            {
                "name": name,
                "owner": owner,
                "allowed_models": list(models),
                "allowed_endpoints": list(endpoints),
                "expires_in": expires_in,
                "metadata": pairs,
                "limits": limits if any(v is not None for v in limits.values()) else None,
                "priority": priority,
                "queue_timeout": queue_timeout,
            }
        )
    except ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"]) from None
    key_spec = KeySpec.from_request(spec)
    key, secret = _with_store(config_path, lambda s: s.create(key_spec, actor=_actor()))
    if as_json:
        click.echo(orjson.dumps({**key.public(), "secret": secret}).decode())
    else:
        _show(key, secret)


@keys.command("list")
@config_option
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(config_path: Path | None, include_revoked: bool, as_json: bool) -> None:
    """List keys (never their secrets)."""
    found = _with_store(config_path, lambda s: s.list_keys(include_revoked=include_revoked))
    if as_json:
        click.echo(orjson.dumps([k.public() for k in found]).decode())
        return
    click.echo(f"{'ID':<18} {'NAME':<24} {'OWNER':<16} {'MODELS':<20} {'EXPIRES':<19} STATE")
    for key in found:
        state = "revoked" if key.revoked_at else "active" if key.active(time.time()) else "expired"
        click.echo(
            f"{key.id:<18} {key.name[:24]:<24} {(key.owner or '-')[:16]:<16} "
            f"{(', '.join(key.allowed_models) or 'all')[:20]:<20} {_when(key.expires_at):<19} "
            f"{state}"
        )


@keys.command()
@config_option
@click.argument("key_id")
def show(config_path: Path | None, key_id: str) -> None:
    """Show one key."""
    key = _with_store(config_path, lambda s: s.get(key_id))
    if key is None:
        raise click.ClickException(f"no key with id {key_id}")
    _show(key)


@keys.command()
@config_option
@click.argument("key_id")
def revoke(config_path: Path | None, key_id: str) -> None:
    """Revoke a key (every replica rejects it within a second)."""
    key = _with_store(config_path, lambda s: s.revoke(key_id, actor=_actor()))
    if key is None:
        raise click.ClickException(f"no key with id {key_id}")
    click.echo(f"revoked {key.id}")


@keys.command()
@config_option
@click.argument("key_id")
@click.option(
    "--grace",
    type=click.FloatRange(0, 30 * 86400),
    default=0.0,
    show_default=True,
    help="Seconds the old secret keeps working.",
)
def rotate(config_path: Path | None, key_id: str, grace: float) -> None:
    """Issue a new secret for a key."""
    rotated = _with_store(
        config_path, lambda s: s.rotate(key_id, grace_seconds=grace, actor=_actor())
    )
    if rotated is None:
        raise click.ClickException(f"no active key with id {key_id}")
    _show(*rotated)


@keys.command()
@config_option
def reencrypt(config_path: Path | None) -> None:
    """Re-encrypt stored bodies under the newest data key (after adding one)."""
    settings = load_or_exit(config_path)
    try:
        keyring = Keyring.from_config(settings.encryption)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if keyring.newest is None:
        raise click.ClickException("no data key configured (encryption.keys)")

    async def go() -> int:
        database = store(settings)
        try:
            await database.upgrade()
            return await BodyStore(database, keyring).reencrypt()
        finally:
            await database.close()

    try:
        changed = run(go())
    except DecryptionError as exc:
        raise click.ClickException(f"cannot re-encrypt: {exc}") from None
    click.echo(f"re-encrypted {changed} records under data key {keyring.newest}")


@keys.command("new-data-key")
def new_data_key_command() -> None:
    """Print a fresh random data key (base64) for encryption.keys."""
    click.echo(new_data_key())


@keys.command()
@config_option
@click.argument("key_id")
@click.option("--rpm", type=click.IntRange(1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(1), help="Tokens per minute.")
@click.option("--concurrent", type=click.IntRange(1), help="Requests in flight at once.")
@click.option("--no-limits", is_flag=True, help="Drop the key's own limits (use the default).")
@click.option("--priority", type=click.Choice(["critical", "normal", "low"]))
@click.option("--queue-timeout", type=click.FloatRange(0, 600))
def update(
    *,
    config_path: Path | None,
    key_id: str,
    rpm: int | None,
    tpm: int | None,
    concurrent: int | None,
    no_limits: bool,
    priority: str | None,
    queue_timeout: float | None,
) -> None:
    """Change a key's limits, priority or queue timeout."""
    changes: dict[str, Any] = {}
    limits = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "concurrent": concurrent}.items() if v}
    if limits:
        changes["limits"] = limits
    if no_limits:
        changes["limits"] = None
    if priority is not None:
        changes["priority"] = priority
    if queue_timeout is not None:
        changes["queue_timeout"] = queue_timeout
    if not changes:
        raise click.UsageError("nothing to change")
    key = _with_store(config_path, lambda s: s.update(key_id, changes, actor=_actor()))
    if key is None:
        raise click.ClickException(f"no key with id {key_id}")
    _show(key)
