"""The docs stay true: every setting documented, CI runs the README's command, exports tested."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel
from starlette.routing import Route

import chatgate
from chatgate.api import create_app
from chatgate.api.openapi import openapi_document
from chatgate.cli.main import cli
from chatgate.cli.reference import render
from chatgate.config import (
    AuthConfig,
    AutoModelConfig,
    AutoRule,
    BatchesConfig,
    BudgetsConfig,
    CacheConfig,
    CorsConfig,
    EncryptionConfig,
    EncryptionKeyConfig,
    ExperimentConfig,
    FilesConfig,
    GuardPolicy,
    GuardsConfig,
    LimitsConfig,
    LocalEmbeddingModelConfig,
    LocalModelConfig,
    ModerationConfig,
    OpenAICompatEmbeddingModelConfig,
    OpenAICompatModelConfig,
    PromptsConfig,
    RedisConfig,
    RoutingConfig,
    ServerConfig,
    Settings,
    StoreConfig,
    VariantConfig,
    VectorStoresConfig,
    load_settings,
)

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _keys(prefix: str, model: type[BaseModel]) -> list[str]:
    return [f"{prefix}.{field.alias or name}" for name, field in model.model_fields.items()]


def test_every_setting_is_in_the_configuration_reference() -> None:
    sections: dict[str, type[BaseModel]] = {
        "server": ServerConfig,
        "store": StoreConfig,
        "auth": AuthConfig,
        "cors": CorsConfig,
        "encryption": EncryptionConfig,
        "encryption.keys[]": EncryptionKeyConfig,
        "limits": LimitsConfig,
        "redis": RedisConfig,
        "routing": RoutingConfig,
        "cache": CacheConfig,
        "budgets": BudgetsConfig,
        "prompts": PromptsConfig,
        "files": FilesConfig,
        "batches": BatchesConfig,
        "vector_stores": VectorStoresConfig,
        "guards": GuardsConfig,
        "guards.moderation": ModerationConfig,
        "guards.policies.*": GuardPolicy,
        "experiments[]": ExperimentConfig,
        "experiments[].variants[]": VariantConfig,
        "auto_models[]": AutoModelConfig,
        "auto_models[].rules[]": AutoRule,
        "models[]": LocalModelConfig,
        "embedding_models[]": LocalEmbeddingModelConfig,
    }
    top = ("models", "embedding_models", "auto_models", "experiments", *sections)
    keys = [name for name in Settings.model_fields if name not in top]
    for prefix, model in sections.items():
        keys += _keys(prefix, model)
    keys += _keys("models[]", OpenAICompatModelConfig)
    keys += _keys("embedding_models[]", OpenAICompatEmbeddingModelConfig)
    missing = [key for key in keys if f"`{key}`" not in README]
    assert not missing, f"README's configuration reference lacks {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"TEST_COMMAND='([^']+)'", ci)
    assert match
    assert match.group(1) in README


def test_readme_opens_with_two_setup_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(?:#.*\n)?(.+)\n```", setup)
    assert len(commands) == 2
    assert commands[0].endswith("chatgate serve")
    assert commands[1] == "bash scripts/test"


def _isort(name: str) -> tuple[int, str]:
    """ruff's `__all__` order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_every_package_exports_a_sorted_complete_all() -> None:
    for info in pkgutil.walk_packages(chatgate.__path__, "chatgate."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            assert not info.ispkg, f"{info.name} has no __all__"
            continue
        assert list(exported) == sorted(exported, key=_isort), f"{info.name}.__all__ unsorted"
        for name in exported:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"


def test_openapi_document_covers_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATGATE_CONFIG", raising=False)
    app = create_app(load_settings())
    document = openapi_document()
    routes = {
        (route.path.replace(":path", ""), method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path != "/openapi.json"
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(cli)


def test_every_python_example_in_the_readme_stands_alone(tmp_path: Path) -> None:
    """Each ```python block runs as written when pasted alone: no name it uses is left undefined
    (ruff's F821), none fails to parse (ruff reports syntax errors too)."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert blocks
    for index, block in enumerate(blocks):
        (tmp_path / f"example_{index}.py").write_text(block)
    ruff = Path(sys.executable).with_name("ruff")
    checked = subprocess.run(
        [str(ruff), "check", "--isolated", "--select", "F821", "--output-format", "concise"]
        + [str(p) for p in sorted(tmp_path.glob("example_*.py"))],
        check=False,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout
