"""An evaluation's comparison table: per variant, the pass rate with its 95% interval, latency,
tokens and cost; and a paired comparison with a baseline (another variant of the run, or the
same variant in an earlier results file): McNemar's exact test on the cases both ran. A
regression is a variant that passes significantly fewer of the shared cases than its baseline,
or whose pass rate is under ``--min-pass-rate``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatgate.evals.runner import Outcome
from chatgate.stats import mcnemar, quantile, wilson

__all__ = ["Summary", "compare", "render", "summarise"]


@dataclass(slots=True)
class Summary:
    variant: str
    cases: int
    passed: int
    errors: int
    pass_rate: float
    ci95: tuple[float, float]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    tokens_mean: float | None
    cost_total: float
    baseline: dict[str, Any] | None = None
    regression: bool = False


def _latest(outcomes: list[Outcome]) -> dict[str, dict[str, Outcome]]:
    """variant -> case -> its newest outcome (a results file may hold older runs)."""
    table: dict[str, dict[str, Outcome]] = {}
    for outcome in outcomes:
        table.setdefault(outcome.variant, {})[outcome.case] = outcome
    return table


def summarise(outcomes: list[Outcome], variants: list[str]) -> list[Summary]:
    table = _latest(outcomes)
    summaries = []
    for name in variants:
        rows = list(table.get(name, {}).values())
        passed = sum(o.passed for o in rows)
        interval = wilson(passed, len(rows))
        answered = [o for o in rows if o.error is None]
        summaries.append(
            Summary(
                variant=name,
                cases=len(rows),
                passed=passed,
                errors=len(rows) - len(answered),
                pass_rate=interval.estimate,
                ci95=(interval.low, interval.high),
                latency_p50_ms=quantile([o.latency_ms for o in answered], 0.5),
                latency_p95_ms=quantile([o.latency_ms for o in answered], 0.95),
                tokens_mean=(
                    sum(o.prompt_tokens + o.completion_tokens for o in answered) / len(answered)
                    if answered
                    else None
                ),
                cost_total=sum(o.cost or 0.0 for o in answered),
            )
        )
    return summaries


def compare(
    summary: Summary,
    candidate: dict[str, Outcome],
    baseline: dict[str, Outcome],
    label: str,
    alpha: float = 0.05,
) -> None:
    """Pair ``candidate`` with ``baseline`` on their shared cases (McNemar), in place."""
    shared = sorted(set(candidate) & set(baseline))
    only_baseline = sum(baseline[c].passed and not candidate[c].passed for c in shared)
    only_candidate = sum(candidate[c].passed and not baseline[c].passed for c in shared)
    p_value = mcnemar(only_baseline, only_candidate)
    summary.baseline = {
        "against": label,
        "shared_cases": len(shared),
        "baseline_passed": sum(baseline[c].passed for c in shared),
        "candidate_passed": sum(candidate[c].passed for c in shared),
        "only_baseline_passed": only_baseline,
        "only_candidate_passed": only_candidate,
        "p_value": p_value,
    }
    summary.regression = only_baseline > only_candidate and p_value < alpha


def render(summaries: list[Summary]) -> str:
    header = ["variant", "cases", "pass rate (95% CI)", "errors", "p50", "p95", "tokens", "cost"]
    lines = ["| " + " | ".join([*header, "vs baseline"]) + " |", "|---" * 9 + "|"]
    for s in summaries:
        versus = "-"
        if s.baseline is not None:
            b = s.baseline
            versus = (
                f"{b['candidate_passed']}/{b['shared_cases']} vs {b['baseline_passed']} "
                f"({b['against']}), p={b['p_value']:.3f}" + (" REGRESSION" if s.regression else "")
            )
        p50 = "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.0f} ms"
        p95 = "-" if s.latency_p95_ms is None else f"{s.latency_p95_ms:.0f} ms"
        tokens = "-" if s.tokens_mean is None else f"{s.tokens_mean:.0f}"
        lines.append(
            f"| {s.variant} | {s.cases} | {s.pass_rate:.0%} ({s.ci95[0]:.0%}-{s.ci95[1]:.0%}) "
            f"| {s.errors} | {p50} | {p95} | {tokens} | {s.cost_total:.4f} | {versus} |"
        )
    return "\n".join(lines)
