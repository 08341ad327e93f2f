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


def _run(probe: str) -> str:
    """``probe`` run by a fresh interpreter (nothing imported yet); its output."""
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout


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
    out = _run(probe).splitlines()
    assert out == ["['chatgate.cli', 'chatgate.cli.main']", "True"]


def test_the_process_that_supervises_the_workers_imports_no_gateway() -> None:
    """``chatgate serve`` checks the config and migrates the store, then supervises granian's
    workers: it never needs the gateway, its models or its tokenizers (95 MB instead of 214)."""
    probe = (
        "import sys\n"
        "import chatgate.cli.serve\n"
        "heavy = ('chatgate.gateway', 'chatgate.providers', 'llama_cpp', 'bpe_openai', 'numpy')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    assert _run(probe).strip() == "[]"
