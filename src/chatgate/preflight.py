"""What ``chatgate serve`` checks and prepares before it starts its workers — the configuration's
secrets, the address it binds, the store's schema — importing no gateway: the process that
supervises the workers stays small, and so do the CLI's store commands."""

from __future__ import annotations

import ipaddress
import socket

from chatgate.config import ConfigError, Settings, resolve_secret
from chatgate.state.db import Database
from chatgate.state.keyring import Keyring

__all__ = ["MIN_MASTER_KEY", "is_loopback", "master_key", "store", "validate_secrets"]

MIN_MASTER_KEY = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or a name such as ``localhost``) is this machine only:
    every address a name resolves to must be a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(f[4][0]).is_loopback for f in found)


def master_key(settings: Settings) -> str | None:
    key = resolve_secret(
        settings.auth.master_key_env, settings.auth.master_key_file, required=False
    )
    if key is not None and len(key) < MIN_MASTER_KEY:
        raise ConfigError(f"the master key must be at least {MIN_MASTER_KEY} characters long")
    return key


def validate_secrets(settings: Settings) -> str | None:
    """Resolve every secret config names and check the prompt template folder (raising
    ConfigError); returns the master key."""
    Keyring.from_config(settings.encryption)
    if settings.prompts.directory is not None:
        from chatgate.gateway.prompts import check_directory  # the gateway, only when needed
        from chatgate.prompts.template import PromptError

        try:
            check_directory(settings.prompts.directory)
        except PromptError as exc:
            raise ConfigError(f"prompts.directory: {exc.message}") from None
    if settings.observability.otel_endpoint:
        from chatgate.gateway.telemetry import telemetry_from_config

        telemetry = telemetry_from_config(settings.observability)  # the otel extra is there
    else:
        telemetry = None
    if telemetry is not None:
        telemetry.shutdown()
    return master_key(settings)


def store(settings: Settings) -> Database:
    return Database(settings.store_url, pool_size=settings.store.pool_size)
