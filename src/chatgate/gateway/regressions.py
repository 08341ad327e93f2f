"""Regression detection: the last window of traffic against a baseline window before it, per
model — p95 latency, error rate, tokens and cost per request — flagging significant changes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chatgate.state.request_log import RequestLogStore, WindowStats

__all__ = ["MIN_REQUESTS", "Finding", "find_regressions"]

MIN_REQUESTS = 20
"""Below this many requests in either window a model is reported as not comparable."""

# metric: (relative increase that counts, absolute increase that counts too)
_THRESHOLDS = {
    "p95_ms": (0.5, 50.0),
    "error_rate": (1.0, 0.02),
    "tokens_per_request": (0.5, 50.0),
    "cost_per_request": (0.5, 0.0),
}


@dataclass(frozen=True, slots=True)
class Finding:
    model: str
    metric: str
    baseline: float
    current: float

    @property
    def change(self) -> float:
        return (self.current - self.baseline) / self.baseline if self.baseline else float("inf")

    def as_dict(self) -> dict[str, Any]:
        change = None if self.baseline == 0 else round(self.change, 4)
        return {
            "model": self.model,
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "change": change,
        }


def _compare(model: str, before: WindowStats, now: WindowStats) -> list[Finding]:
    found = []
    for metric, (relative, absolute) in _THRESHOLDS.items():
        old, new = getattr(before, metric), getattr(now, metric)
        grew = new - old
        if grew > absolute and (old == 0 or grew / old > relative):
            found.append(Finding(model, metric, old, new))
    return found


async def find_regressions(
    store: RequestLogStore, *, window: float, baseline: float, now: float | None = None
) -> dict[str, Any]:
    end = time.time() if now is None else now
    split = end - window
    start = split - baseline
    findings: list[Finding] = []
    compared: dict[str, Any] = {}
    for model in await store.models(start, end):
        before = await store.window(start, split, model)
        current = await store.window(split, end, model)
        comparable = before.requests >= MIN_REQUESTS and current.requests >= MIN_REQUESTS
        compared[model] = {
            "baseline": before.as_dict(),
            "current": current.as_dict(),
            "comparable": comparable,
        }
        if comparable:
            findings += _compare(model, before, current)
    return {
        "object": "chatgate.regressions",
        "window": {"from": split, "to": end},
        "baseline": {"from": start, "to": split},
        "regressions": [f.as_dict() for f in findings],
        "models": compared,
    }
