"""Loading a GGUF model into llama.cpp for this CPU.

llama.cpp places weights in "extra buffer types" where the CPU has special kernels: Intel AMX
tiles, and weights repacked for wide SIMD. On hosts that advertise AMX but do not let a process
use its tiles (seen on virtual machines), the AMX matrix multiply crashes the whole process
(SIGSEGV in ``ggml_backend_amx_mul_mat``) on the first prompt longer than one token. So by default
the extra buffer types are off where the CPU advertises AMX, and on elsewhere; the model's
``extra_buffer_types`` setting overrides that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as native
from llama_cpp import Llama

__all__ = [
    "amx_advertised",
    "extra_buffers_set_to",
    "load_llama",
    "model_params",
    "quiet_llama_log",
]

log = logging.getLogger("chatgate.providers.local")

_PARAMS_LOCK = threading.Lock()


def quiet_llama_log() -> None:
    """llama.cpp's own log (every tensor it loads or converts): errors only. This filter is
    llama-cpp-python's; its ``verbose=False`` would instead point the whole process's stdout
    and stderr at /dev/null while a model loads, losing every other thread's log lines."""
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)


@cache
def amx_advertised() -> bool:
    """Whether /proc/cpuinfo lists AMX (``amx_tile``); False where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("flags") and " amx_tile" in line for line in info)
    except OSError:
        return False


def _enabled(extra_buffer_types: bool | None) -> bool:
    enabled = not amx_advertised() if extra_buffer_types is None else extra_buffer_types
    if not enabled and extra_buffer_types is None:
        log.info("this CPU advertises AMX: llama.cpp's AMX and repacked-weight kernels are off")
    return enabled


def model_params(extra_buffer_types: bool | None = None) -> native.llama_model_params:
    """llama.cpp's default model parameters with the extra buffer types on or off (None: off
    where the CPU advertises AMX)."""
    params: native.llama_model_params = native.llama_model_default_params()
    params.use_extra_bufts = _enabled(extra_buffer_types)
    return params


@contextmanager
def extra_buffers_set_to(enabled: bool) -> Iterator[None]:
    """llama-cpp-python builds its model parameters inside ``Llama()`` from the library's
    defaults, with no argument for this one: change the default while the model loads."""
    with _PARAMS_LOCK:
        default = native.llama_model_default_params

        def params() -> Any:
            value = default()
            value.use_extra_bufts = enabled
            return value

        native.llama_model_default_params = params
        try:
            yield
        finally:
            native.llama_model_default_params = default


def load_llama(path: Path, *, extra_buffer_types: bool | None = None, **options: Any) -> Llama:
    """``Llama(path, **options)`` with llama.cpp's extra buffer types on or off (None: off where
    the CPU advertises AMX)."""
    with extra_buffers_set_to(_enabled(extra_buffer_types)):
        return Llama(model_path=str(path), **options)
