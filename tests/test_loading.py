"""/health while a local model loads, and after it fails to load."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as native

from chatgate.providers.local import default_model_path
from chatgate.providers.local.cpu import extra_buffers_set_to, load_llama
from chatgate.providers.local.engine import Engine
from tests.support import RawResponse, post_json, raw, start_gateway


def _health_until(url: str, accept: set[str], timeout: float = 30.0) -> RawResponse:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = raw(f"{url}/health", timeout=2)
        except OSError:
            response = None
        if response is not None and response.json()["status"] in accept:
            return response
        time.sleep(0.05)  # polling for a state change, bounded
    raise AssertionError(f"health never reached {accept}")


def test_health_is_503_while_loading_and_after_a_failed_load(tmp_path: Path) -> None:
    # A FIFO as the model file: llama.cpp blocks opening it until we open the other end.
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    config = f"models:\n  - name: pending\n    path: {fifo}\n"
    gateway = start_gateway(tmp_path, config=config, ready=False)
    try:
        loading = _health_until(gateway.url, {"loading"})
        assert loading.status == 503
        assert loading.json()["models"] == {"pending": "loading", "all-minilm-l6-v2": "ready"}

        result: dict[str, Any] = {}

        def ask() -> None:
            result["response"] = post_json(
                f"{gateway.base_url}/chat/completions",
                {"model": "pending", "messages": [{"role": "user", "content": "hi"}]},
            )

        waiting = threading.Thread(target=ask)
        waiting.start()
        with fifo.open("wb"):
            pass  # end of file: the load fails
        failed = _health_until(gateway.url, {"failed"})
        assert failed.status == 503
        assert failed.json()["models"] == {"pending": "failed", "all-minilm-l6-v2": "ready"}
        waiting.join(30)
        response = result["response"]
        assert response.status == 503
        assert "failed to load" in response.json()["error"]["message"]
    finally:
        gateway.stop()


def test_extra_buffer_types_are_set_only_while_a_model_loads() -> None:
    """llama-cpp-python has no argument for llama.cpp's extra buffer types (the AMX kernels that
    crash on hosts advertising AMX without granting it): chatgate sets the default for one load."""
    assert native.llama_model_default_params().use_extra_bufts is True  # the library's default
    with extra_buffers_set_to(False):
        assert native.llama_model_default_params().use_extra_bufts is False
    assert native.llama_model_default_params().use_extra_bufts is True
    llama = load_llama(default_model_path(), extra_buffer_types=None, n_ctx=256, verbose=False)
    # A prompt of several tokens is what crashed under AMX; it must evaluate.
    text = llama.create_completion("One two three four five six", max_tokens=2)
    assert isinstance(text, dict)
    assert text["usage"]["prompt_tokens"] > 1
    assert native.llama_model_default_params().use_extra_bufts is True


def test_loading_a_model_leaves_stdout_and_stderr_alone(monkeypatch: Any) -> None:
    """llama-cpp-python's quiet mode points fds 1 and 2 at /dev/null while a model loads, and
    every other thread's log lines meanwhile were lost (seen: a model's load warning and the
    "loaded" line of another model loading beside it)."""
    redirected: list[int] = []
    real = os.dup2

    def spy(fd: int, fd2: int, inheritable: bool = True) -> int:
        redirected.append(fd2)
        return real(fd, fd2, inheritable)

    monkeypatch.setattr(os, "dup2", spy)
    engine = Engine(default_model_path(), n_ctx=256, n_threads=1, n_batch=32, max_batch=1)
    engine.close()
    assert redirected == []
