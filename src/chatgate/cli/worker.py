"""``chatgate worker``: a process that only works on batches and vector-store ingestion (no
HTTP), sharing the store with the servers. On PostgreSQL, run as many as you like: they claim
batch lines with ``FOR UPDATE SKIP LOCKED`` and files under leases, and take over the work of a
worker that died once its leases run out."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from chatgate.cli.common import config_option, load_or_exit
from chatgate.gateway.services import Services
from chatgate.logs import configure_logging

__all__ = ["worker"]


@click.command()
@config_option
def worker(config_path: Path | None) -> None:
    """Answer batches and ingest vector-store files until stopped (SIGTERM or Ctrl-C hands
    batch lines back)."""
    settings = load_or_exit(config_path)
    configure_logging(settings.server.log_level)

    async def go() -> None:
        services = Services(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await services.start(run_batches=True)
        click.echo(f"chatgate worker {services.batch_runner.worker_id} running", err=True)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await services.close()

    asyncio.run(go())
