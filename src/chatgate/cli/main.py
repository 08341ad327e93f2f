"""Top-level command group; each command group lives in its own module, imported only when that
command runs (``chatgate --help`` imports none of them: the gateway takes seconds to import)."""

from __future__ import annotations

import importlib

import click

from chatgate import __version__

__all__ = ["COMMANDS", "cli", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("chatgate.cli.audit:audit", "List recent admin actions, newest first."),
    "batch": ("chatgate.cli.batch:batch", "Batches on a running gateway (OpenAI's Batch API)."),
    "db": (
        "chatgate.cli.db:db",
        "Manage the state store (SQLite in the data dir, or PostgreSQL).",
    ),
    "eval": (
        "chatgate.cli.evals:evals",
        "Evaluate variants (models, prompts, parameters) on a dataset, through the gateway.",
    ),
    "experiments": (
        "chatgate.cli.experiments:experiments",
        "A/B experiments: configured splits and their reports.",
    ),
    "keys": (
        "chatgate.cli.keys:keys",
        "Create, list, show, update, revoke and rotate virtual keys.",
    ),
    "prompts": (
        "chatgate.cli.prompts:prompts",
        "Prompt templates: immutable versions, labels, history and rollback.",
    ),
    "serve": (
        "chatgate.cli.serve:serve",
        "Start the OpenAI-compatible API (default http://127.0.0.1:8080/v1).",
    ),
    "tokens": ("chatgate.cli.tokens:tokens", "Token counts with each model's own tokenizer."),
    "usage": (
        "chatgate.cli.usage:usage",
        "Usage per key, owner, model or day (or a subcommand).",
    ),
    "worker": (
        "chatgate.cli.worker:worker",
        "Answer batches and ingest vector-store files until stopped (SIGTERM or Ctrl-C hands "
        "batch lines back).",
    ),
}
"""Each command: where it is defined, and its one-line help (what its docstring says first;
tests/test_cli_lazy.py keeps the two equal), listed without importing it."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, name = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))
            for name, (_, summary) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="chatgate")
def cli() -> None:
    """chatgate: an OpenAI-compatible ChatGPT-API gateway with an embedded local model."""


def main() -> None:
    cli()
