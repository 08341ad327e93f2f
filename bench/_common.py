"""Shared bench helpers: machine facts, results files, a chatgate server subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import psutil

RESULTS = Path(__file__).parent / "results"
MASTER = "bench-master-key-" + secrets.token_hex(8)


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("chatgate", "llama-cpp-python", "granian", "starlette", "aiohttp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_results(name: str, payload: dict[str, Any], table: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A server in a subprocess (pinned to ``cpu`` where taskset exists), ready when
    ``ready_path`` answers 200; ``stats()`` reads its process tree's CPU time and peak RSS."""

    def __init__(
        self,
        args: list[str],
        port: int,
        *,
        ready_path: str = "/health",
        env: dict[str, str] | None = None,
        cpu: int | None = None,
        timeout: float = 120,
    ):
        self.port = port
        if cpu is not None and shutil.which("taskset"):
            args = ["taskset", "-c", str(cpu), *args]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
        child_env.update(env or {})
        self.process = subprocess.Popen(
            args, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}{ready_path}", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{' '.join(args)} did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process tree so far."""
        total = 0.0
        for process in self.tree():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def peak_rss_mib(self) -> float:
        """The tree's peak resident memory (the sum of each process's VmHWM) in MiB."""
        total = 0
        for process in self.tree():
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        return total / 2**20

    def rss_mib(self) -> float:
        total = 0
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Server(Service):
    """``chatgate serve`` in a subprocess."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        cpu: int | None = None,
    ):
        port = free_port()
        args = [sys.executable, "-m", "chatgate", "serve", "--port", str(port)]
        if config is not None:
            args += ["--config", str(config)]
        super().__init__(args, port, env=env, cpu=cpu)


def virtual_key(url: str, *, limits: bool) -> str:
    """A new virtual key's secret (with limits too high to matter, if ``limits``)."""
    spec: dict[str, Any] = {"name": "bench"}
    if limits:
        spec["limits"] = {"rpm": 100_000_000, "tpm": 10_000_000_000, "concurrent": 100_000}
    request = urllib.request.Request(
        f"{url}/admin/keys",
        data=json.dumps(spec).encode(),
        headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return str(json.load(response)["secret"])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


async def timed_requests(
    url: str, body: dict[str, Any], count: int, key: str
) -> tuple[list[float], list[float]]:
    """``count`` chat requests one after another: (end-to-end seconds, server-side seconds
    from ``Server-Timing: total``) per request."""
    wall, server = [], []
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
                timing = r.headers["server-timing"]
            wall.append(time.perf_counter() - started)
            match = re.search(r"total;dur=([\d.]+)", timing)
            assert match
            server.append(float(match.group(1)) / 1000)
    return wall, server
