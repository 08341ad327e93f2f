"""The evaluation harness: datasets and variants, assertions, a resumable runner through the
gateway, and the comparison report."""

from chatgate.evals.dataset import (
    Assertion,
    Case,
    DatasetError,
    Plan,
    Variant,
    load_cases,
    load_plan,
)
from chatgate.evals.report import Summary, compare, render, summarise
from chatgate.evals.runner import EvalClient, Outcome, Runner, read_results

__all__ = [
    "Assertion",
    "Case",
    "DatasetError",
    "EvalClient",
    "Outcome",
    "Plan",
    "Runner",
    "Summary",
    "Variant",
    "compare",
    "load_cases",
    "load_plan",
    "read_results",
    "render",
    "summarise",
]
