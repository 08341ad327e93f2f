"""The runtime lock carries every package chatgate's own code imports (a dev-only package would
pass the test suite and break README command 1 on a fresh machine)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
OPTIONAL = {"opentelemetry"}  # the `otel` extra, imported only when tracing is configured


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src" / "chatgate").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"chatgate", "__future__"} - OPTIONAL


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_lock_has_every_imported_package() -> None:
    locked = {
        _normalise(line.split("==")[0])
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if re.match(r"^[A-Za-z0-9]", line)
    }
    providers = importlib.metadata.packages_distributions()
    missing = {
        module: providers.get(module, [module])
        for module in _imported_top_levels()
        if not any(_normalise(d) in locked for d in providers.get(module, [module]))
    }
    assert not missing, f"imported by src/ but not in requirements.lock: {missing}"
