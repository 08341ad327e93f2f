"""``chatgate db``: the state store."""

from __future__ import annotations

from pathlib import Path

import click

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.gateway.services import store

__all__ = ["db"]


@click.group()
def db() -> None:
    """Manage the state store (SQLite in the data dir, or PostgreSQL)."""


@db.command()
@config_option
def upgrade(config_path: Path | None) -> None:
    """Apply pending migrations."""
    settings = load_or_exit(config_path)

    async def go() -> None:
        database = store(settings)
        try:
            await database.upgrade()
        finally:
            await database.close()

    run(go())
    click.echo("store is up to date")
