"""The numbers behind ``/dashboard``: time series and per-endpoint / per-model / per-key tables
from the request log."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

from chatgate.state.request_log import RequestLogStore
from chatgate.stats import quantile

__all__ = ["dashboard_data"]

_BUCKETS = 96


def _quantile(values: list[float], q: float) -> float:
    return quantile(values, q) or 0.0


def _summary(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    latencies = [float(r[1]) for r in rows]
    return {
        "requests": len(rows),
        "errors": sum(1 for r in rows if r[2] >= 400),
        "tokens": sum(int(r[3]) + int(r[4]) for r in rows),
        "cost": sum(float(r[5]) for r in rows),
        "p50_ms": statistics.median(latencies) if latencies else 0.0,
        "p95_ms": _quantile(latencies, 0.95),
    }


async def dashboard_data(store: RequestLogStore, hours: float) -> dict[str, Any]:
    end = time.time()
    start = end - hours * 3600
    rows = await store.rows_between(start, end)
    width = max(60.0, (end - start) / _BUCKETS)
    buckets: defaultdict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        buckets[int((row[0] - start) // width)].append(row)
    series: dict[str, list[float]] = defaultdict(list)
    for index in range(int((end - start) // width) + 1):
        chunk = buckets.get(index, [])
        summary = _summary(chunk)
        cached = [r for r in chunk if r[6] in ("hit", "miss")]
        series["time"].append(start + index * width)
        series["requests"].append(summary["requests"])
        series["errors"].append(summary["errors"])
        series["tokens"].append(summary["tokens"])
        series["cost"].append(summary["cost"])
        series["p50_ms"].append(summary["p50_ms"])
        series["p95_ms"].append(summary["p95_ms"])
        hits = sum(1 for r in cached if r[6] == "hit")
        series["cache_hit_rate"].append(hits / len(cached) if cached else 0.0)
    by_model: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
    by_key: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
    by_endpoint: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_model[row[7]].append(row)
        by_key[row[8] or "-"].append(row)
        by_endpoint[row[9]].append(row)
    return {
        "object": "chatgate.dashboard",
        "from": start,
        "to": end,
        "bucket_seconds": width,
        "totals": _summary(rows),
        "series": series,
        "endpoints": [{"endpoint": e, **_summary(r)} for e, r in sorted(by_endpoint.items())],
        "models": [{"model": m, **_summary(r)} for m, r in sorted(by_model.items())],
        "keys": [{"key": k, **_summary(r)} for k, r in sorted(by_key.items())],
    }
