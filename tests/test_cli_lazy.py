"""``chatgate --help`` lists every command without importing any (the gateway takes seconds to
import): the one-line help it prints is declared beside each command's location, and must stay
what the command's own docstring says."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from chatgate.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_declared_summary_is_the_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name
    assert command.get_short_help_str(limit=1000) == COMMANDS[name][1]


def test_help_imports_no_command() -> None:
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from chatgate.cli.main import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('chatgate.')))\n"
        "print('serve' in result.output and 'worker' in result.output)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["['chatgate.cli', 'chatgate.cli.main']", "True"]
