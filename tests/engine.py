"""A real inference engine for the tests: llama-cpp-python's own OpenAI-compatible server
(``python -m llama_cpp.server``, from the same wheel chatgate builds; see ``engine_server``)
serving the embedded model's GGUF — what a user fronting a self-hosted engine puts behind
chatgate."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chatgate.providers.local import default_model_path
from tests.support import free_port, raw

__all__ = ["ENGINE_MODEL", "Engine", "start_engine"]

ENGINE_MODEL = "smollm2-engine"
"""The id the engine serves the model under (``--model_alias``)."""


@dataclass
class Engine:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    n_ctx: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # an engine dying, as it does when killed or out of memory
        self.process.wait(20)


def start_engine(
    tmp: Path, *, port: int | None = None, n_ctx: int = 2048, alias: str | None = ENGINE_MODEL
) -> Engine:
    """The engine on ``port`` (a free one by default), once it answers ``/v1/models``; its model
    id is ``alias``, or the GGUF's path when None."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = tmp / f"engine-{port}.log"
    command = [
        sys.executable,
        str(Path(__file__).with_name("engine_server.py")),
        *("--model", str(default_model_path())),
        *(("--model_alias", alias) if alias else ()),
        *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)),
        *("--n_threads", "1", "--verbose", "false"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    engine = Engine(process, port, log_path, n_ctx)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the engine exited early:\n{engine.log()}")
        try:
            if raw(f"{engine.base_url}/models", timeout=5).status == 200:
                return engine
        except OSError:
            pass
        time.sleep(0.1)  # polling for start-up, bounded
    engine.stop()
    raise RuntimeError(f"the engine did not start:\n{engine.log()}")
