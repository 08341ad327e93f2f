"""``chatgate serve``: validate the configuration, then run the ASGI app on granian."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import click
from granian import Granian
from granian.constants import Interfaces

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.config import CONFIG_ENV, ConfigError, Settings
from chatgate.logs import configure_logging
from chatgate.preflight import is_loopback, store, validate_secrets
from chatgate.state.db import SchemaError

__all__ = ["serve"]


def _refuse_open_network(settings: Settings) -> None:
    try:
        key = validate_secrets(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    # Served open on this machine only: the worker logs the warning (once, where the log is).
    if key is None and not is_loopback(settings.server.host):
        raise click.ClickException(
            f"refusing to serve on {settings.server.host} without a master key: anyone on the "
            "network could use the API and its admin endpoints. Set CHATGATE_MASTER_KEY (or "
            "auth.master_key_file), or bind to 127.0.0.1."
        )


def _address(host: str) -> str:
    """The IP address to bind for ``host`` (a name such as ``localhost`` is resolved: the
    server binds addresses, not names)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise click.ClickException(f"cannot bind to `{host}`: {exc}") from None
    ipv4 = [f for f in found if f[0] == socket.AF_INET]  # `localhost` is 127.0.0.1 before ::1
    return str((ipv4 or found)[0][4][0])


def _prepare_store(settings: Settings) -> None:
    """Migrate the store (one replica at a time), or with migrations off check that its schema
    is this chatgate's; refuse, with what to do, a schema newer than this chatgate knows."""

    async def go() -> list[str]:
        database = store(settings)
        try:
            if settings.store.migrate_on_start:
                await database.upgrade()
            else:
                await database.check_schema()
            return database.exposed()
        finally:
            await database.close()

    try:
        exposed = run(go())
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    if exposed:
        click.echo(
            "WARNING: the store can be read by other users of this machine: "
            f"{', '.join(exposed)}. Keys' hashes, uploaded files and batch lines are in it"
            " (in plain text without encryption keys). Make the folder 0700 and the files 0600.",
            err=True,
        )


@click.command()
@config_option
@click.option("--host", help="Address to bind (server.host).")
@click.option("--port", type=int, help="TCP port (server.port).")
@click.option("--workers", type=int, help="Worker processes (server.workers).")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM certificate chain: serve HTTPS (server.tls_cert).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM private key for --tls-cert (server.tls_key).",
)
def serve(
    *,
    config_path: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Start the OpenAI-compatible API (default http://127.0.0.1:8080/v1)."""
    # Command-line options become environment overrides so every worker process sees them.
    overrides = {
        "CHATGATE_SERVER__HOST": host,
        "CHATGATE_SERVER__PORT": None if port is None else str(port),
        "CHATGATE_SERVER__WORKERS": None if workers is None else str(workers),
        "CHATGATE_SERVER__TLS_CERT": None if tls_cert is None else str(tls_cert.resolve()),
        "CHATGATE_SERVER__TLS_KEY": None if tls_key is None else str(tls_key.resolve()),
        CONFIG_ENV: None if config_path is None else str(config_path.resolve()),
    }
    os.environ.update({k: v for k, v in overrides.items() if v is not None})
    settings = load_or_exit(None)
    _refuse_open_network(settings)
    # Workers may start in another directory: pin the data dir to an absolute path.
    os.environ["CHATGATE_DATA_DIR"] = str(settings.data_dir.resolve())

    _prepare_store(settings)
    server = settings.server
    configure_logging(server.log_level)
    scheme = "https" if server.tls_cert else "http"
    click.echo(
        f"chatgate serving {', '.join(m.name for m in settings.models)} "
        f"at {scheme}://{server.host}:{server.port}/v1",
        err=True,
    )
    Granian(
        "chatgate.api.app:app_from_environment",
        factory=True,
        address=_address(server.host),
        port=server.port,
        interface=Interfaces.ASGI,
        workers=server.workers,
        log_level=server.log_level,  # type: ignore[arg-type]
        log_access=False,
        ssl_cert=server.tls_cert,
        ssl_key=server.tls_key,
    ).serve()
