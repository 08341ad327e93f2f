"""Top-level command group; each command group lives in its own module."""

from __future__ import annotations

import click

from chatgate import __version__
from chatgate.cli.audit import audit
from chatgate.cli.batch import batch
from chatgate.cli.db import db
from chatgate.cli.evals import evals
from chatgate.cli.experiments import experiments
from chatgate.cli.keys import keys
from chatgate.cli.prompts import prompts
from chatgate.cli.serve import serve
from chatgate.cli.tokens import tokens
from chatgate.cli.usage import usage
from chatgate.cli.worker import worker

__all__ = ["cli", "main"]


@click.group()
@click.version_option(__version__, prog_name="chatgate")
def cli() -> None:
    """chatgate: an OpenAI-compatible ChatGPT-API gateway with an embedded local model."""


for command in (serve, worker, batch, keys, prompts, experiments, evals, db, audit, tokens, usage):
    cli.add_command(command)


def main() -> None:
    cli()
