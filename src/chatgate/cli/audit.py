"""``chatgate audit``: the log of admin actions."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import orjson

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.preflight import store
from chatgate.state import AuditEntry, AuditLog

__all__ = ["audit"]


@click.command()
@config_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def audit(config_path: Path | None, limit: int, as_json: bool) -> None:
    """List recent admin actions, newest first."""
    settings = load_or_exit(config_path)

    async def go() -> list[AuditEntry]:
        database = store(settings)
        try:
            await database.upgrade()
            return await AuditLog(database).entries(limit=limit)
        finally:
            await database.close()

    for entry in run(go()):
        if as_json:
            click.echo(orjson.dumps(dataclasses.asdict(entry)).decode())
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        details = orjson.dumps(entry.details).decode() if entry.details else ""
        target = entry.target or "-"
        click.echo(f"{when}  {entry.actor:<20} {entry.action:<12} {target:<18} {details}")
