"""The CLI reference (``docs/cli.md``), generated from the commands' own help."""

from __future__ import annotations

import click

from chatgate.cli.main import cli

__all__ = ["render"]


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            if sub is not None:
                found += _walk(sub, [*path, name])
    return found


def render(root: click.Group) -> str:
    """Markdown with each command's ``--help`` text, in command order."""
    parts = [
        "# chatgate CLI reference",
        "",
        "Generated from the commands' help by `python -m chatgate.cli.reference`; "
        "`tests/test_docs.py` checks it is current.",
        "",
    ]
    for path, command in _walk(root, ["chatgate"]):
        name = " ".join(path)
        with click.Context(command, info_name=name, terminal_width=80, max_content_width=80) as ctx:
            text = command.get_help(ctx)
        parts += [f"## `{' '.join(path)}`", "", "```text", text, "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(cli), end="")
