"""An experiment's report: per variant, requests, errors, latency, tokens, cost, guard flags and
the primary metric with a 95% interval; each variant against the control; and the decision.

The decision rule is a **fixed horizon**: nothing is decided until every variant has
``horizon`` pieces of feedback. Then each variant is compared with the control by a two-sided
test (Welch's t for a mean score, a two-proportion z-test for a label rate) at ``alpha``
divided by the number of comparisons (Bonferroni). Reading the report before the horizon
shows the running numbers but never a decision, so looking early cannot inflate the false
positive rate the way stopping at the first significant peek would.
"""

from __future__ import annotations

import math
from typing import Any

from chatgate.config import ExperimentConfig
from chatgate.state.feedback import VariantData
from chatgate.stats import Comparison, mean_interval, quantile, two_proportions, welch, wilson

__all__ = ["DECISION_RULE", "experiment_report"]

DECISION_RULE = (
    "fixed horizon: no decision until every variant has {horizon} feedback; then each variant "
    "vs the control, two-sided {test} at alpha {alpha} / {comparisons} (Bonferroni)"
)


def _mean(values: list[float] | list[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _metric(experiment: ExperimentConfig, data: VariantData) -> dict[str, Any]:
    if experiment.metric == "score":
        interval = mean_interval(data.scores)
    else:
        hits = sum(label == experiment.success_label for label in data.labels)
        interval = wilson(hits, len(data.labels))
    return {
        "n": interval.n,
        "value": _finite(interval.estimate),
        "ci95": [_finite(interval.low), _finite(interval.high)],
    }


def _compare(experiment: ExperimentConfig, control: VariantData, other: VariantData) -> Comparison:
    alpha = 0.05  # the interval shown is always 95%; the decision uses the corrected alpha
    if experiment.metric == "score":
        return welch(control.scores, other.scores, alpha)
    good = experiment.success_label
    return two_proportions(
        (sum(x == good for x in control.labels), len(control.labels)),
        (sum(x == good for x in other.labels), len(other.labels)),
        alpha,
    )


def experiment_report(
    experiment: ExperimentConfig, variants: dict[str, VariantData]
) -> dict[str, Any]:
    names = [v.name for v in experiment.variants]
    data = {name: variants.get(name, VariantData()) for name in names}
    control = names[0]
    comparisons = len(names) - 1
    corrected = experiment.alpha / comparisons
    rows = []
    for name in names:
        d = data[name]
        row: dict[str, Any] = {
            "variant": name,
            "weight": next(v.weight for v in experiment.variants if v.name == name),
            "requests": d.requests,
            "errors": d.errors,
            "latency_p50_ms": quantile(d.latencies_ms, 0.5),
            "latency_p95_ms": quantile(d.latencies_ms, 0.95),
            "tokens_mean": _mean(d.tokens),
            "cost_mean": _mean(d.costs),
            "cost_total": sum(d.costs),
            "guard_flag_rate": d.guard_flagged / d.requests if d.requests else None,
            "metric": _metric(experiment, d),
        }
        if name != control:
            comparison = _compare(experiment, data[control], d)
            row["vs_control"] = {
                "difference": _finite(comparison.difference),
                "ci95": [_finite(comparison.low), _finite(comparison.high)],
                "p_value": _finite(comparison.p_value),
                "significant": comparison.p_value < corrected,
            }
        rows.append(row)
    counts = [row["metric"]["n"] for row in rows]
    if min(counts) < experiment.horizon:
        decision = {
            "state": "collecting",
            "text": f"wait: {sum(max(0, experiment.horizon - n) for n in counts)} more feedback "
            f"needed (fixed horizon of {experiment.horizon} per variant)",
        }
    else:
        better = [
            r
            for r in rows[1:]
            if r["vs_control"]["significant"] and r["vs_control"]["difference"] > 0
        ]
        if better:
            best = max(better, key=lambda r: r["vs_control"]["difference"])
            decision = {
                "state": "decided",
                "winner": best["variant"],
                "text": f"{best['variant']} beats {control}",
            }
        else:
            decision = {
                "state": "decided",
                "winner": control,
                "text": f"no variant beats {control}: keep it",
            }
    test = "Welch's t-test" if experiment.metric == "score" else "two-proportion z-test"
    return {
        "object": "experiment.report",
        "experiment": experiment.name,
        "target": {"model": experiment.model, "prompt": experiment.prompt},
        "metric": experiment.metric
        if experiment.metric == "score"
        else f"label == {experiment.success_label!r}",
        "decision_rule": DECISION_RULE.format(
            horizon=experiment.horizon, test=test, alpha=experiment.alpha, comparisons=comparisons
        ),
        "decision": decision,
        "variants": rows,
    }
