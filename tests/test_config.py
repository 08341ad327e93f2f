"""Configuration: YAML plus CHATGATE_* overrides, strict keys, errors that name the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatgate.config import (
    ConfigError,
    LocalModelConfig,
    OpenAICompatModelConfig,
    load_settings,
    resolve_secret,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CHATGATE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chatgate.yaml"
    path.write_text(text)
    return path


def test_defaults_serve_the_embedded_model() -> None:
    settings = load_settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    (model,) = settings.models
    assert isinstance(model, LocalModelConfig)
    assert model.name == "smollm2-135m-instruct"


def test_yaml_declares_models(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {port: 9000}
models:
  - name: gpt-4o-mini
    provider: openai_compat
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    context_window: 128000
  - name: tiny
    aliases: [small]
    n_ctx: 2048
""",
    )
    settings = load_settings(path)
    assert settings.server.port == 9000
    remote, local = settings.models
    assert isinstance(remote, OpenAICompatModelConfig)
    assert remote.context_window == 128000
    assert isinstance(local, LocalModelConfig)
    assert local.aliases == ["small"]


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server: {port: 9000, host: 0.0.0.0}\n")
    monkeypatch.setenv("CHATGATE_SERVER__PORT", "9100")
    monkeypatch.setenv("CHATGATE_CONFIG", str(path))
    settings = load_settings()
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("server: {prot: 1}\n", "server.prot"),
        ("server: {port: -1}\n", "server.port"),
        ("models: [{name: x, n_ctx: 10}]\n", "models[0].n_ctx"),
        ("models: [{name: x, provider: openai_compat}]\n", "models[0].base_url"),
        ("models: [{name: x, provider: warp}]\n", "models[0]"),
        ("models: [{name: a}, {name: b, aliases: [a]}]\n", "duplicate model id `a`"),
        ("colour: blue\n", "colour"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, key_path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert key_path in str(caught.value)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(write(tmp_path, "server: [\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- 1\n"))


def test_secret_by_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-abc\n")
    assert resolve_secret("MY_KEY", None) == "sk-abc"
    secret = tmp_path / "key"
    secret.write_text("sk-file\n")
    assert resolve_secret(None, secret) == "sk-file"
    with pytest.raises(ConfigError, match="NOT_SET"):
        resolve_secret("NOT_SET", None)


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {prot: 1}\n")
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "server.prot" in result.stderr
    assert "Traceback" not in result.stderr
