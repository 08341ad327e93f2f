"""Helpers shared by command groups: the --config option, loading settings, running async code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from chatgate.config import ConfigError, Settings, load_settings

__all__ = ["config_option", "load_or_exit", "run"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def config_option(function: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML configuration file (default: $CHATGATE_CONFIG, else built-in defaults).",
    )(function)


def load_or_exit(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)
