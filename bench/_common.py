"""Shared bench helpers: machine facts, results files, a chatgate server subprocess."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


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


class Server:
    """``chatgate serve`` in a subprocess, ready when ``/health`` answers 200."""

    def __init__(self, env: dict[str, str] | None = None, config: Path | None = None):
        self.port = free_port()
        args = [sys.executable, "-m", "chatgate", "serve", "--port", str(self.port)]
        if config is not None:
            args += ["--config", str(config)]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
        child_env.update(env or {})
        self.process = subprocess.Popen(
            args, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("chatgate did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
