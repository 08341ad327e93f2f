"""Gateway overhead: chatgate and its peers versus calling the upstream directly, same run.

The fast fake upstream (``bench/upstream.py``, fixed latency 0 ms or 50 ms, JSON or SSE) and
the load generator share CPU 1; the gateway under test gets CPU 0 and one worker. For each
scenario and target: the saturation rate (wrk, closed loop), then fixed open-loop rates (25, 100,
500, 1000, 2000 requests/s) up to 90% of that target's saturation; added latency is the
target's percentile minus the direct call's at the same rate. CPU time per request and peak
RSS come from the target's process tree.

    python -m bench overhead             # full run, LiteLLM included (installed once)
    python -m bench overhead --no-peers  # chatgate only
    python -m bench overhead --smoke     # a quick check that it runs (CI)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import peers
from bench._common import (
    MASTER,
    RESULTS,
    Server,
    Service,
    free_port,
    machine,
    markdown_table,
    virtual_key,
    write_results,
)
from bench.load import LoadResult, run_in_process

LOAD_CPU = 1
SERVER_CPU = 0
RATES = [25, 100, 500, 1000, 2000]
"""The issue's fixed rates, plus 25/s: a rate the slowest peer still sustains."""
SCENARIOS = [("json", 0), ("sse", 0), ("json", 50), ("sse", 50)]


@dataclass
class TargetResult:
    saturation: LoadResult
    cpu_ms_per_request: float | None
    rates: dict[int, LoadResult | None] = field(default_factory=dict)
    peak_rss_mib: float | None = None


def model_name(latency_ms: int) -> str:
    return f"bench-{latency_ms}ms"


def start_upstreams(latencies: set[int]) -> dict[int, Service]:
    out = {}
    for latency in sorted(latencies):
        port = free_port()
        args = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
        args += ["--latency-ms", str(latency)]
        out[latency] = Service(args, port, ready_path="/", cpu=LOAD_CPU)
    return out


def chatgate_config(directory: Path, upstreams: dict[int, Service], extra: str = "") -> Path:
    lines = [f"data_dir: {directory / 'chatgate-data'}", extra, "models:"]
    for latency, upstream in upstreams.items():
        lines += [
            f"  - name: {model_name(latency)}",
            "    provider: openai_compat",
            f"    base_url: {upstream.url}/v1",
        ]
    path = directory / "chatgate.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(
    url: str,
    model: str,
    *,
    stream: bool,
    rate: float = 0,
    duration: float,
    connections: int = 64,
    headers: dict[str, str] | None = None,
    unique: bool = False,
    warmup: float | None = None,
) -> LoadResult:
    argv = [f"{url}/v1/chat/completions", "--model", model, "--duration", str(duration)]
    argv += ["--rate", str(rate), "--connections", str(connections)]
    if warmup is None:
        warmup = 1 if duration >= 3 else 0.3
    argv += ["--warmup", str(warmup)]
    argv += ["--stream"] * stream + ["--unique"] * unique
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    return run_in_process(argv, LOAD_CPU)


def measure(
    target: Service,
    model: str,
    *,
    stream: bool,
    rates: list[int],
    duration: float,
    connections: int,
    own_process: bool,
    headers: dict[str, str] | None = None,
) -> TargetResult:
    common: dict[str, Any] = {"stream": stream, "connections": connections, "headers": headers}
    load(target.url, model, duration=2, warmup=0, **common)  # warm-up
    before = target.cpu_seconds() if own_process else 0.0
    saturation = load(target.url, model, duration=duration, warmup=0, **common)
    cpu = (target.cpu_seconds() - before) * 1000 / saturation.count if own_process else None
    result = TargetResult(saturation=saturation, cpu_ms_per_request=cpu)
    for rate in rates:
        if rate > 0.9 * saturation.achieved:
            result.rates[rate] = None  # not sustainable here
            continue
        result.rates[rate] = load(
            target.url, model, stream=stream, rate=rate, duration=duration, headers=headers
        )
    if own_process:
        result.peak_rss_mib = target.peak_rss_mib()
    return result


def _added(target: LoadResult | None, direct: LoadResult | None) -> str:
    if target is None or direct is None:
        return "not sustained"
    if target.error_rate >= 0.001:
        return f"{target.error_rate:.1%} errors"
    parts = [target.p50_ms - direct.p50_ms, target.p95_ms - direct.p95_ms]
    parts.append(target.p99_ms - direct.p99_ms)
    return " / ".join(f"{p:+.2f}" for p in parts)


def _ratio(a: float | None, b: float | None, fmt: str = "{:.1f}x") -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "—"
    return fmt.format(a / b)


def scenario_table(title: str, results: dict[str, TargetResult], rates: list[int]) -> str:
    names = list(results)
    gateways = [n for n in names if n != "direct"]
    direct = results["direct"]
    header = ["", *names]
    peer = next((n for n in gateways if n != "chatgate"), None)
    if peer:
        header.append(f"chatgate / {peer}")
    rows = []
    row = ["max rps (errors)"]
    for name in names:
        sat = results[name].saturation
        row.append(f"{sat.achieved:,.0f} ({sat.error_rate:.2%})")
    if peer:
        row.append(
            "**"
            + _ratio(results["chatgate"].saturation.achieved, results[peer].saturation.achieved)
            + "**"
        )
    rows.append(row)
    for rate in rates:
        row = [f"added ms p50 / p95 / p99 @ {rate} rps"]
        for name in names:
            if name == "direct":
                measured = direct.rates.get(rate)
                row.append(
                    f"{measured.p50_ms:.2f} / {measured.p95_ms:.2f} / {measured.p99_ms:.2f} (abs)"
                    if measured
                    else "—"
                )
            else:
                row.append(_added(results[name].rates.get(rate), direct.rates.get(rate)))
        if peer:
            ours, theirs = results["chatgate"].rates.get(rate), results[peer].rates.get(rate)
            base = direct.rates.get(rate)
            if ours and theirs and base:
                added_ours = max(ours.p99_ms - base.p99_ms, 0.01)
                row.append(f"p99 added {_ratio(theirs.p99_ms - base.p99_ms, added_ours)} less")
            else:
                row.append("—")
        rows.append(row)
    row = ["CPU ms per request (at saturation)"]
    for name in names:
        cpu = results[name].cpu_ms_per_request
        row.append("—" if cpu is None else f"{cpu:.3f}")
    if peer:
        theirs_cpu = results[peer].cpu_ms_per_request
        row.append(_ratio(theirs_cpu, results["chatgate"].cpu_ms_per_request) + " less")
    rows.append(row)
    row = ["peak RSS MiB"]
    for name in names:
        rss = results[name].peak_rss_mib
        row.append("—" if rss is None else f"{rss:.0f}")
    if peer:
        row.append("")
    rows.append(row)
    return f"### {title}\n\n" + markdown_table(header, rows)


def plot(all_results: dict[str, dict[str, TargetResult]], rates: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    scenarios = list(all_results)
    names = list(next(iter(all_results.values())))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [all_results[s][name].saturation.achieved for s in scenarios]
        left.bar([x + i * width for x in range(len(scenarios))], values, width, label=name)
    left.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(scenarios))], scenarios)
    left.set_ylabel("requests/s at saturation (log scale)")
    left.set_yscale("log")
    left.legend()
    first = scenarios[0]
    direct = all_results[first]["direct"]
    for name in names:
        if name == "direct":
            continue
        xs, ys = [], []
        for rate in rates:
            measured, base = all_results[first][name].rates.get(rate), direct.rates.get(rate)
            if measured and base:
                xs.append(rate)
                ys.append(measured.p99_ms - base.p99_ms)
        right.plot(xs, ys, marker="o", label=name)
    right.set_xlabel("offered load, requests/s")
    right.set_ylabel(f"p99 added latency, ms ({first})")
    right.set_yscale("log")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _start(
    name: str,
    directory: Path,
    upstreams: dict[int, Service],
    routes: list[peers.Route],
    cpu: int | None,
) -> tuple[Service, dict[str, str]]:
    """Start one target; like for like, each checks a client credential on every request."""
    if name == "chatgate":
        server = Server(
            config=chatgate_config(directory, upstreams),
            env={"CHATGATE_MASTER_KEY": MASTER},
            cpu=cpu,
        )
        return server, {"authorization": f"Bearer {virtual_key(server.url, limits=False)}"}
    return peers.litellm(routes, cpu, directory), {
        "authorization": f"Bearer {peers.LITELLM_MASTER_KEY}"
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench overhead", description=__doc__)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rates", type=int, nargs="*", default=RATES)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="let gateways use every CPU (sharing with the load generator and upstream)",
    )
    parser.add_argument("--scenarios", nargs="*", default=[f"{m}-{lat}ms" for m, lat in SCENARIOS])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.rates, args.no_peers = 1, [100], True
        args.scenarios = ["json-0ms", "sse-0ms"]
    scenarios = [(s.split("-")[0], int(s.split("-")[1].removesuffix("ms"))) for s in args.scenarios]

    all_results: dict[str, dict[str, TargetResult]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        upstreams = start_upstreams({latency for _, latency in scenarios})
        routes = [peers.Route(model_name(lat), f"{u.url}/v1") for lat, u in upstreams.items()]
        names = ["chatgate"] + ([] if args.no_peers else [f"litellm {peers.litellm_version()}"])
        cpu = None if args.unpinned else SERVER_CPU
        try:
            for mode, latency in scenarios:
                title = f"{mode}-{latency}ms"
                all_results[title] = {
                    "direct": measure(
                        upstreams[latency],
                        model_name(latency),
                        stream=mode == "sse",
                        rates=args.rates,
                        duration=args.duration,
                        connections=64 if latency == 0 else 256,
                        own_process=False,
                    )
                }
            # One target alive at a time (an idle peer still takes CPU from the one measured).
            for name in names:
                target, headers = _start(name, directory, upstreams, routes, cpu)
                try:
                    for mode, latency in scenarios:
                        title = f"{mode}-{latency}ms"
                        all_results[title][name] = measure(
                            target,
                            model_name(latency),
                            stream=mode == "sse",
                            rates=args.rates,
                            duration=args.duration,
                            connections=64 if latency == 0 else 256,
                            own_process=True,
                            headers=headers,
                        )
                finally:
                    target.stop()
        finally:
            for service in upstreams.values():
                service.stop()

    tables = [scenario_table(title, results, args.rates) for title, results in all_results.items()]
    placement = "any CPU" if args.unpinned else "CPU 0"
    intro = (
        f"Gateway overhead vs the upstream called directly (1 worker on {placement}; upstream "
        "and load generator on CPU 1). Added latency in ms (target percentile minus direct "
        "percentile at the same offered rate); 'not sustained' where the rate is above 90% of "
        "the target's saturation."
    )
    text = intro + "\n\n" + "\n\n".join(tables)
    print(text)
    if args.smoke:
        chatgate_rows = [r["chatgate"] for r in all_results.values()]
        assert all(r.saturation.error_rate < 0.001 for r in chatgate_rows), "errors under load"
        return
    payload: dict[str, Any] = {
        "machine": machine(),
        "peers": names[1:],
        "duration_s": args.duration,
        "scenarios": {
            title: {name: asdict(result) for name, result in results.items()}
            for title, results in all_results.items()
        },
    }
    name = "overhead-unpinned" if args.unpinned else "overhead"
    write_results(name, payload, text)
    plot(all_results, args.rates, RESULTS / f"{name}.png")
    print(f"written: {RESULTS / name}.md, .json, .png")
