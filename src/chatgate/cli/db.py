"""``chatgate db``: the state store."""

from __future__ import annotations

from pathlib import Path

import click

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.preflight import store
from chatgate.state.db import SchemaError

__all__ = ["db"]


@click.group()
def db() -> None:
    """Manage the state store (SQLite in the data dir, or PostgreSQL)."""


@db.command()
@config_option
def upgrade(config_path: Path | None) -> None:
    """Apply pending migrations (safe while replicas start or run: migrations take a lock and
    run one at a time). For deploys that migrate as a step of their own, before new replicas
    start with `store.migrate_on_start: false`."""
    settings = load_or_exit(config_path)

    async def go() -> str:
        database = store(settings)
        try:
            await database.upgrade()
            return (await database.schema()).head
        finally:
            await database.close()

    try:
        head = run(go())
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"store is up to date (schema {head})")
