"""``chatgate eval run``: a dataset under several variants through a running gateway, with
assertions, a results file, a comparison table and an exit code for CI."""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import asdict
from pathlib import Path

import click
import orjson

from chatgate.evals.dataset import DatasetError, load_cases, load_plan
from chatgate.evals.report import compare, render, summarise
from chatgate.evals.runner import EvalClient, Outcome, Runner, read_results

__all__ = ["evals"]


@click.group("eval")
def evals() -> None:
    """Evaluate variants (models, prompts, parameters) on a dataset, through the gateway."""


@evals.command("run")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--variants",
    "variants_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML: `variants` (name, model, system, prompt, params), shared `assert`, `judge`.",
)
@click.option("--base-url", default="http://127.0.0.1:8080/v1", show_default=True)
@click.option(
    "--api-key-env",
    default="CHATGATE_API_KEY",
    show_default=True,
    help="Environment variable with the key to call the gateway with.",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file (JSONL); an existing one is resumed. Default: DATASET.results.jsonl.",
)
@click.option("--cache/--no-cache", default=True, help="Reuse answers to identical requests.")
@click.option("--baseline-variant", help="Compare every other variant with this one (paired).")
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier results file: compare each variant with its namesake there (paired).",
)
@click.option(
    "--min-pass-rate",
    type=click.FloatRange(0, 1),
    help="Exit 1 when a variant passes fewer cases than this.",
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds per request.")
def run_eval(
    *,
    dataset: Path,
    variants_path: Path,
    base_url: str,
    api_key_env: str,
    concurrency: int,
    out: Path | None,
    cache: bool,
    baseline_variant: str | None,
    baseline_path: Path | None,
    min_pass_rate: float | None,
    timeout: float,
) -> None:
    """Run every case of DATASET (JSONL) under every variant; exit 1 on a regression."""
    try:
        cases, plan = load_cases(dataset), load_plan(variants_path)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    names = [v.name for v in plan.variants]
    if baseline_variant is not None and baseline_variant not in names:
        raise click.BadParameter(
            f"not a variant: {baseline_variant}", param_hint="--baseline-variant"
        )
    results = out or dataset.with_suffix(".results.jsonl")
    cache_dir = results.parent / ".eval-cache" if cache else None

    async def go() -> None:
        async with EvalClient(base_url, os.environ.get(api_key_env), timeout) as client:
            runner = Runner(client, plan, cases, results, concurrency=concurrency, cache=cache_dir)
            pending = runner.pending()
            done = len(cases) * len(names) - len(pending)
            if done:
                click.echo(f"resuming: {done} results already in {results}", err=True)
            with click.progressbar(length=len(pending), label="evaluating", file=None) as bar:
                await runner.run(lambda: bar.update(1))

    asyncio.run(go())
    outcomes = [o for o in read_results(results) if o.variant in names]
    current = {v.name: v.fingerprint() for v in plan.variants}
    outcomes = [o for o in outcomes if current[o.variant] == o.fingerprint]
    summaries = summarise(outcomes, names)
    by_variant: dict[str, dict[str, Outcome]] = {}
    for outcome in outcomes:
        by_variant.setdefault(outcome.variant, {})[outcome.case] = outcome
    earlier: dict[str, dict[str, Outcome]] = {}
    if baseline_path is not None:
        for outcome in read_results(baseline_path):
            earlier.setdefault(outcome.variant, {})[outcome.case] = outcome
    for summary in summaries:
        mine = by_variant.get(summary.variant, {})
        if baseline_variant is not None and summary.variant != baseline_variant:
            compare(summary, mine, by_variant.get(baseline_variant, {}), baseline_variant)
        elif baseline_path is not None and summary.variant in earlier:
            compare(summary, mine, earlier[summary.variant], baseline_path.name)
    click.echo(render(summaries))
    summary_path = results.with_suffix(".summary.json")
    summary_path.write_bytes(
        orjson.dumps([asdict(s) for s in summaries], option=orjson.OPT_INDENT_2)
    )
    failing = [s.variant for s in summaries if s.regression]
    if min_pass_rate is not None:
        failing += [
            s.variant for s in summaries if math.isnan(s.pass_rate) or s.pass_rate < min_pass_rate
        ]
    click.echo(f"results: {results}; summary: {summary_path}", err=True)
    if failing:
        raise click.ClickException(f"regression in: {', '.join(sorted(set(failing)))}")
