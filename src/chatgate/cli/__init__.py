"""The ``chatgate`` command: a thin face over the same services the server uses."""

from chatgate.cli.main import main

__all__ = ["main"]
