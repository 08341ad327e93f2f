"""``chatgate experiments``: the configured A/B experiments and their reports, from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.gateway.experiment_report import experiment_report
from chatgate.preflight import store
from chatgate.state.feedback import FeedbackStore

__all__ = ["experiments"]


@click.group()
def experiments() -> None:
    """A/B experiments: configured splits and their reports."""


@experiments.command("list")
@config_option
def list_experiments(config_path: Path | None) -> None:
    """The experiments in the configuration."""
    for experiment in load_or_exit(config_path).experiments:
        target = f"model {experiment.model}" if experiment.model else f"prompt {experiment.prompt}"
        variants = ", ".join(f"{v.name} ({v.weight:g})" for v in experiment.variants)
        state = "" if experiment.enabled else "  [disabled]"
        click.echo(f"{experiment.name}: {target}; {variants}{state}")


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@experiments.command()
@config_option
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def report(config_path: Path | None, name: str, fmt: str) -> None:
    """Per-variant results of experiment NAME, each variant against the control, and the
    decision (exit code 0 either way; the JSON has everything)."""
    settings = load_or_exit(config_path)
    experiment = next((e for e in settings.experiments if e.name == name), None)
    if experiment is None:
        raise click.ClickException(f"no experiment {name!r} in the configuration")

    async def go() -> dict[str, Any]:
        database = store(settings)
        try:
            await database.upgrade()
            return experiment_report(experiment, await FeedbackStore(database).experiment(name))
        finally:
            await database.close()

    result = run(go())
    if fmt == "json":
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{name} — metric: {result['metric']}; {result['decision_rule']}")
    click.echo(
        f"{'VARIANT':<16} {'REQUESTS':>8} {'ERRORS':>6} {'P50 MS':>8} {'TOKENS':>8} "
        f"{'COST':>10} {'FLAGGED':>7} {'N':>5} {'METRIC':>7} {'95% CI':>17} {'VS CONTROL':>12}"
    )
    for row in result["variants"]:
        metric = row["metric"]
        low, high = metric["ci95"]
        versus = row.get("vs_control")
        compared = (
            "-"
            if versus is None
            else f"{_number(versus['difference'])} p={_number(versus['p_value'])}"
        )
        click.echo(
            f"{row['variant']:<16} {row['requests']:>8} {row['errors']:>6} "
            f"{_number(row['latency_p50_ms'], 1):>8} {_number(row['tokens_mean'], 1):>8} "
            f"{_number(row['cost_mean'], 6):>10} {_number(row['guard_flag_rate'], 2):>7} "
            f"{metric['n']:>5} {_number(metric['value']):>7} "
            f"{'[' + _number(low) + ', ' + _number(high) + ']':>17} {compared:>12}"
        )
    click.echo(f"decision: {result['decision']['text']}")
