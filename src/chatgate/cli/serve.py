"""``chatgate serve``: validate the configuration, then run the ASGI app on granian."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from chatgate.config import CONFIG_ENV, ConfigError, load_settings

__all__ = ["serve"]


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML configuration file (default: $CHATGATE_CONFIG, else built-in defaults).",
)
@click.option("--host", help="Address to bind (server.host).")
@click.option("--port", type=int, help="TCP port (server.port).")
@click.option("--workers", type=int, help="Worker processes (server.workers).")
def serve(
    config_path: Path | None, host: str | None, port: int | None, workers: int | None
) -> None:
    """Start the OpenAI-compatible API (default http://127.0.0.1:8080/v1)."""
    # Command-line options become environment overrides so every worker process sees them.
    overrides = {
        "CHATGATE_SERVER__HOST": host,
        "CHATGATE_SERVER__PORT": None if port is None else str(port),
        "CHATGATE_SERVER__WORKERS": None if workers is None else str(workers),
        CONFIG_ENV: None if config_path is None else str(config_path.resolve()),
    }
    os.environ.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    from granian import Granian
    from granian.constants import Interfaces

    server = settings.server
    logging.basicConfig(
        level=server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    click.echo(
        f"chatgate serving {', '.join(m.name for m in settings.models)} "
        f"at http://{server.host}:{server.port}/v1",
        err=True,
    )
    Granian(
        "chatgate.api.app:app_from_environment",
        factory=True,
        address=server.host,
        port=server.port,
        interface=Interfaces.ASGI,
        workers=server.workers,
        log_level=server.log_level,  # type: ignore[arg-type]
        log_access=False,
    ).serve()
