"""``chatgate usage``: requests, tokens, cost and latency from the request log."""

from __future__ import annotations

import csv
import datetime
import io
from pathlib import Path
from typing import Any, Literal

import click
import orjson

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.gateway.regressions import find_regressions
from chatgate.preflight import store
from chatgate.state.request_log import GROUPS, RequestLogStore, UsageRow

__all__ = ["usage"]


def _bound(value: datetime.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


@click.group(invoke_without_command=True)
@config_option
@click.option("--group-by", type=click.Choice(GROUPS), default="model", show_default=True)
@click.option("--from", "start", type=click.DateTime(), help="From this date/time (UTC).")
@click.option("--to", "end", type=click.DateTime(), help="Until this date/time (UTC).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.pass_context
def usage(
    ctx: click.Context,
    *,
    config_path: Path | None,
    group_by: Literal["key", "owner", "model", "day", "prompt", "endpoint"],
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    fmt: str,
) -> None:
    """Usage per key, owner, model or day (or a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_or_exit(config_path)

    async def go() -> list[UsageRow]:
        database = store(settings)
        try:
            await database.upgrade()
            return await RequestLogStore(database).usage(group_by, _bound(start), _bound(end))
        finally:
            await database.close()

    rows = run(go())
    if fmt == "json":
        click.echo(orjson.dumps([row.as_dict() for row in rows]).decode())
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                group_by,
                "requests",
                "errors",
                "prompt_tokens",
                "completion_tokens",
                "cost",
                "latency_avg_ms",
            ]
        )
        for row in rows:
            writer.writerow(
                [
                    row.group,
                    row.requests,
                    row.errors,
                    row.prompt_tokens,
                    row.completion_tokens,
                    f"{row.cost:.6f}",
                    f"{row.latency_avg_ms:.1f}",
                ]
            )
        click.echo(out.getvalue(), nl=False)
        return
    click.echo(
        f"{group_by.upper():<28} {'REQUESTS':>9} {'ERRORS':>7} {'PROMPT':>10} "
        f"{'COMPLETION':>11} {'COST':>12} {'AVG MS':>8}"
    )
    for row in rows:
        click.echo(
            f"{row.group[:28]:<28} {row.requests:>9} {row.errors:>7} {row.prompt_tokens:>10} "
            f"{row.completion_tokens:>11} {row.cost:>12.6f} {row.latency_avg_ms:>8.1f}"
        )


@usage.command()
@config_option
@click.option(
    "--window",
    type=click.FloatRange(1),
    default=3600,
    show_default=True,
    help="Seconds of recent traffic to judge.",
)
@click.option(
    "--baseline",
    type=click.FloatRange(1),
    default=86400,
    show_default=True,
    help="Seconds before the window to compare with.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def regressions(config_path: Path | None, window: float, baseline: float, as_json: bool) -> None:
    """Compare recent traffic with a baseline; exit 1 when something regressed (for CI/cron)."""
    settings = load_or_exit(config_path)

    async def go() -> dict[str, Any]:
        database = store(settings)
        try:
            await database.upgrade()
            return await find_regressions(
                RequestLogStore(database), window=window, baseline=baseline
            )
        finally:
            await database.close()

    report = run(go())
    if as_json:
        click.echo(orjson.dumps(report).decode())
    else:
        for finding in report["regressions"]:
            change = finding["change"]
            grew = "new" if change is None else f"{change:+.0%}"
            click.echo(
                f"REGRESSION {finding['model']}: {finding['metric']} "
                f"{finding['baseline']:.6g} -> {finding['current']:.6g} ({grew})"
            )
        if not report["regressions"]:
            click.echo("no regressions")
    if report["regressions"]:
        raise SystemExit(1)
