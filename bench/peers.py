"""Peers measured beside chatgate: each installed from PyPI into its own virtual environment
under ``bench/.peers/`` (never into chatgate's), configured like-for-like, started pinned to
the same CPU as chatgate with the same worker count.

LiteLLM proxy follows its production page: a config file, a master key (it refuses to start
without one; clients send it, as chatgate's clients send a virtual key), ``set_verbose: false``,
JSON logs, ``LITELLM_LOG=ERROR``, ``request_timeout: 600``, no database, ``--num_workers 1``.
It pins 1.108.7: later releases need packages this machine's registry lacks.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench._common import Service, free_port

PEERS = Path(__file__).parent / ".peers"
LITELLM_VERSION = "1.108.7"


@dataclass(frozen=True)
class Route:
    """A model name clients send, and the upstream (OpenAI-compatible, ``.../v1``) behind it."""

    model: str
    base_url: str


def _venv(name: str, requirement: str) -> Path:
    root = PEERS / name
    python = root / "bin" / "python"
    marker = root / ".installed"
    if marker.exists() and marker.read_text() == requirement:
        return root
    print(f"installing {requirement} into {root} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", requirement], check=True, stdout=sys.stderr
    )
    marker.write_text(requirement)
    return root


LITELLM_MASTER_KEY = "sk-bench-" + secrets.token_hex(16)


def litellm(routes: list[Route], cpu: int | None, workdir: Path) -> Service:
    """LiteLLM proxy; clients authenticate with ``LITELLM_MASTER_KEY``."""
    root = _venv("litellm", f"litellm[proxy]=={LITELLM_VERSION}")
    lines = ["model_list:"]
    for route in routes:
        lines += [
            f"  - model_name: {route.model}",
            "    litellm_params:",
            f"      model: openai/{route.model}",
            f"      api_base: {route.base_url}",
            "      api_key: sk-bench-upstream",
        ]
    lines += [
        "litellm_settings:",
        "  set_verbose: false",
        "  json_logs: true",
        "  request_timeout: 600",
        "general_settings: {}",
    ]
    config = workdir / "litellm.yaml"
    config.write_text("\n".join(lines) + "\n")
    port = free_port()
    args = [str(root / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--num_workers", "1"]
    env = {"LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION", "JSON_LOGS": "True"}
    env["LITELLM_TELEMETRY"] = "False"
    env["LITELLM_MASTER_KEY"] = LITELLM_MASTER_KEY
    return Service(args, port, ready_path="/health/liveliness", env=env, cpu=cpu, timeout=240)


def litellm_version() -> str:
    return LITELLM_VERSION
