"""Requantizing a GGUF model's weights to a type with batched (GEMM) kernels, cached on disk.

llama.cpp multiplies a batch of tokens by Q4_1 weights one dot product at a time, unpacking each
weight row again for every token, so decoding eight sequences costs about five times one. Q8_0
has tiled matrix kernels (llamafile's tinyBLAS) that unpack a tile once for all the tokens. The
conversion runs once per source file and llama.cpp version (about a second for the embedded
135M model) and is kept in a cache directory; each process writes its own temporary file and
renames it into place, so replicas starting together never read a half-written model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Literal

import llama_cpp

from chatgate.providers.local.cpu import quiet_llama_log

__all__ = ["WeightType", "default_cache_dir", "requantized"]

log = logging.getLogger("chatgate.providers.local")

WeightType = Literal["q8_0"]

_FTYPES: dict[WeightType, int] = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/chatgate/models``, else ``~/.cache/chatgate/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatgate" / "models"


def requantized(source: Path, weights: WeightType, cache_dir: Path) -> Path:
    """A copy of ``source`` with its weights in ``weights``, converted now or found in the
    cache; raises ``OSError`` when it can be neither."""
    stat = source.stat()
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{llama_cpp.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = cache_dir / f"{source.stem}.{digest}.{weights}.gguf"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _FTYPES[weights]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    log.info("converting %s to %s in %s (once)", source.name, weights, cache_dir)
    quiet_llama_log()
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
        if status != 0:
            raise OSError(f"llama.cpp could not convert {source} to {weights} (status {status})")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
