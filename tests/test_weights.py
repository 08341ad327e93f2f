"""The embedded model's weights converted to Q8_0 once, kept in a cache, and served; a model
given by path is served as it is; a cache that cannot be written costs speed, not service."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from llama_cpp._internals import LlamaModel

from chatgate.providers.local import default_model_path
from chatgate.providers.local.cpu import model_params
from chatgate.providers.local.weights import requantized
from tests.support import Gateway, start_gateway

Q8_0 = "7"  # llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0, as GGUF's general.file_type holds it


def file_type(path: Path) -> str:
    model = LlamaModel(path_model=str(path), params=model_params(), verbose=False)
    try:
        return model.metadata()["general.file_type"]
    finally:
        model.close()


def snapshot(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_conversion_runs_once_and_is_reused(tmp_path: Path) -> None:
    first = requantized(default_model_path(), "q8_0", tmp_path)
    assert first.parent == tmp_path
    assert file_type(first) == Q8_0
    before = snapshot(first)
    again = requantized(default_model_path(), "q8_0", tmp_path)
    assert again == first and snapshot(again) == before  # found, not written again
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial file left behind


def test_a_changed_source_is_converted_again(tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    shutil.copyfile(default_model_path(), source)
    cache = tmp_path / "cache"
    first = requantized(source, "q8_0", cache)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    second = requantized(source, "q8_0", cache)
    assert second != first and second.is_file()


def test_an_unusable_cache_raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):
        requantized(default_model_path(), "q8_0", blocker / "models")


@pytest.fixture(scope="module")
def ways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    """The embedded model four ways: converted into a cache, with a cache that is a file, with
    a damaged converted copy, and given by path (served as it is)."""
    tmp = tmp_path_factory.mktemp("weights")
    (tmp / "a-file").write_text("")
    # a converted copy that no longer loads (damaged on disk after it was written)
    requantized(default_model_path(), "q8_0", tmp / "damaged").write_bytes(b"not a model")
    small = "    n_ctx: 1024\n    max_batch: 1\n"
    config = (
        "models:\n"
        f"  - name: converted\n    provider: local\n    weights_cache: {tmp / 'cache'}\n{small}"
        f"  - name: unwritable\n    provider: local\n    weights_cache: {tmp / 'a-file'}\n{small}"
        f"  - name: damaged\n    provider: local\n    weights_cache: {tmp / 'damaged'}\n{small}"
        f"  - name: given\n    provider: local\n    path: {default_model_path()}\n"
        f"    weights_cache: {tmp / 'given-cache'}\n{small}"
    )
    server = start_gateway(tmp / "gateway", config=config)
    yield server, tmp
    server.stop()


def answer(gateway: Gateway, model: str) -> str:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello!"}], max_tokens=8
    )
    assert response.choices[0].message.content
    return response.choices[0].message.content


def logged(gateway: Gateway, line: str) -> bool:
    """Whether the gateway logged ``line``: its log is written by a background thread, so
    this polls (bounded) for a line already logged or about to be."""
    deadline = time.monotonic() + 10
    while line not in gateway.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_embedded_model_is_served_from_its_converted_copy(
    ways: tuple[Gateway, Path],
) -> None:
    gateway, tmp = ways
    answer(gateway, "converted")
    (converted,) = (tmp / "cache").iterdir()
    assert converted.name.endswith(".q8_0.gguf")
    assert logged(gateway, f"model converted loaded from {converted}")


def test_an_unwritable_cache_serves_the_shipped_file(ways: tuple[Gateway, Path]) -> None:
    gateway, _ = ways
    answer(gateway, "unwritable")
    assert logged(gateway, f"serving {default_model_path().name} as it is")
    assert logged(gateway, f"model unwritable loaded from {default_model_path()}")


def test_a_model_given_by_path_is_served_as_it_is(ways: tuple[Gateway, Path]) -> None:
    gateway, tmp = ways
    answer(gateway, "given")
    assert not (tmp / "given-cache").exists()
    assert logged(gateway, f"model given loaded from {default_model_path()}")


def test_a_damaged_converted_copy_serves_the_shipped_file(ways: tuple[Gateway, Path]) -> None:
    gateway, _ = ways
    answer(gateway, "damaged")
    assert logged(gateway, f"serving {default_model_path()} as it is")
    assert logged(gateway, f"model damaged loaded from {default_model_path()}")
