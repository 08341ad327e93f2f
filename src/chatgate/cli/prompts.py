"""``chatgate prompts``: prompt templates on the store directly (running servers notice within
``prompts.poll_interval``)."""

from __future__ import annotations

import difflib
import getpass
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.gateway.prompts import PromptLibrary, load_prompt_file
from chatgate.preflight import store
from chatgate.prompts.template import PromptError
from chatgate.state.prompts import LabelConflict, PromptStore, StoredVersion

__all__ = ["prompts"]

T = TypeVar("T")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"[:64]


def _with_library(config_path: Path | None, action: Callable[[PromptLibrary], Awaitable[T]]) -> T:
    settings = load_or_exit(config_path)

    async def go() -> T:
        database = store(settings)
        try:
            await database.upgrade()
            return await action(PromptLibrary(PromptStore(database)))
        finally:
            await database.close()

    try:
        return run(go())
    except PromptError as exc:
        raise click.ClickException(exc.message) from None


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _yaml(stored: StoredVersion) -> str:
    return yaml.safe_dump(stored.definition, sort_keys=False, allow_unicode=True, width=100)


async def _find(library: PromptLibrary, prompt_id: str, which: str) -> StoredVersion:
    """A version by number, or by the label pointing at it."""
    number = int(which) if which.isdigit() else await library.store.label(prompt_id, which)
    stored = None if number is None else await library.store.get(prompt_id, number)
    if stored is None:
        raise click.ClickException(f"prompt {prompt_id} has no version or label {which!r}")
    return stored


@click.group()
def prompts() -> None:
    """Prompt templates: immutable versions, labels, history and rollback."""


@prompts.command()
@config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--label", "labels", multiple=True, help="Also move this label (repeatable).")
def push(config_path: Path | None, files: tuple[Path, ...], labels: tuple[str, ...]) -> None:
    """Store each template FILE (YAML/JSON; a folder: every file in it) as a new version."""
    paths = [
        p
        for f in files
        for p in (sorted(f.iterdir()) if f.is_dir() else [f])
        if p.suffix in (".yaml", ".yml", ".json")
    ]

    async def go(library: PromptLibrary) -> list[str]:
        lines = []
        for path in paths:
            prompt_id, definition, own_labels = load_prompt_file(path)
            stored, created = await library.push(prompt_id, definition, actor=_actor())
            for label in (*own_labels, *labels):
                await library.store.set_label(prompt_id, label, stored.version, actor=_actor())
            state = "new" if created else "unchanged"
            lines.append(f"{prompt_id}\tversion {stored.version}\t{state}")
        return lines

    for line in _with_library(config_path, go):
        click.echo(line)


@prompts.command("list")
@config_option
def list_prompts(config_path: Path | None) -> None:
    """Every prompt with its number of versions and its labels."""

    async def go(library: PromptLibrary) -> list[str]:
        rows = []
        for summary in await library.store.list_prompts():
            labels = ", ".join(f"{k}={v}" for k, v in sorted(summary.labels.items()))
            rows.append(f"{summary.prompt_id:<32} {summary.versions:>8}  {labels}")
        return rows

    click.echo(f"{'PROMPT':<32} {'VERSIONS':>8}  LABELS")
    for row in _with_library(config_path, go):
        click.echo(row)


@prompts.command()
@config_option
@click.argument("prompt_id")
@click.argument("which", default="latest")
def show(config_path: Path | None, prompt_id: str, which: str) -> None:
    """A version of PROMPT_ID (a number or a label; default: latest) as YAML."""

    async def go(library: PromptLibrary) -> StoredVersion:
        return await _find(library, prompt_id, which)

    stored = _with_library(config_path, go)
    labels = ", ".join(stored.labels) or "-"
    click.echo(f"# {prompt_id} version {stored.version} (labels: {labels})")
    click.echo(f"# created {_when(stored.created_at)} by {stored.created_by}")
    click.echo(_yaml(stored), nl=False)


@prompts.command()
@config_option
@click.argument("prompt_id")
@click.argument("old")
@click.argument("new")
def diff(config_path: Path | None, prompt_id: str, old: str, new: str) -> None:
    """A unified diff between two versions of PROMPT_ID (numbers or labels)."""

    async def go(library: PromptLibrary) -> tuple[StoredVersion, StoredVersion]:
        return await _find(library, prompt_id, old), await _find(library, prompt_id, new)

    before, after = _with_library(config_path, go)
    lines = difflib.unified_diff(
        _yaml(before).splitlines(keepends=True),
        _yaml(after).splitlines(keepends=True),
        f"{prompt_id}@{before.version}",
        f"{prompt_id}@{after.version}",
    )
    click.echo("".join(lines), nl=False)


@prompts.command()
@config_option
@click.argument("prompt_id")
@click.argument("label")
@click.argument("version", type=int)
@click.option(
    "--expect",
    type=int,
    help="Only if the label points to this version now (0: only if it does not exist).",
)
def label(
    config_path: Path | None, prompt_id: str, label: str, version: int, expect: int | None
) -> None:
    """Point LABEL of PROMPT_ID at VERSION (atomically; with --expect, compare-and-swap)."""

    async def go(library: PromptLibrary) -> int | None:
        try:
            return await library.store.set_label(
                prompt_id, label, version, expected=expect, actor=_actor()
            )
        except LookupError:
            raise click.ClickException(f"prompt {prompt_id} has no version {version}") from None
        except LabelConflict as exc:
            raise click.ClickException(
                f"{label} points to version {exc.current}, not {expect}: nothing changed"
            ) from None

    previous = _with_library(config_path, go)
    click.echo(f"{prompt_id} {label}: {previous or '-'} -> {version}")


@prompts.command()
@config_option
@click.argument("prompt_id")
@click.argument("label")
def rollback(config_path: Path | None, prompt_id: str, label: str) -> None:
    """Move LABEL of PROMPT_ID back to the version it pointed to before its last move."""

    async def go(library: PromptLibrary) -> tuple[int, int]:
        try:
            return await library.store.rollback(prompt_id, label, actor=_actor())
        except LookupError:
            raise click.ClickException(
                f"{label} of {prompt_id} has no earlier version to return to"
            ) from None

    moved_from, moved_to = _with_library(config_path, go)
    click.echo(f"{prompt_id} {label}: {moved_from} -> {moved_to}")


@prompts.command()
@config_option
@click.argument("prompt_id")
@click.option("--label", help="Only this label's moves.")
def history(config_path: Path | None, prompt_id: str, label: str | None) -> None:
    """Every move of PROMPT_ID's labels, oldest first."""

    async def go(library: PromptLibrary) -> list[Any]:
        return await library.store.history(prompt_id, label)

    for event in _with_library(config_path, go):
        previous = "-" if event.previous_version is None else event.previous_version
        click.echo(
            f"{_when(event.at)}  {event.label:<16} {previous} -> {event.version}  {event.actor}"
        )
