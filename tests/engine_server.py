"""``python -m llama_cpp.server``, with llama.cpp's extra buffer types off where the CPU advertises
AMX, as chatgate's embedded engine does: llama.cpp's AMX kernels crash the process (a general
protection fault on ``ldtilecfg``) on hosts that advertise AMX without granting it, as some
virtual machines do — the engine's own server has no option for it."""

from __future__ import annotations

import runpy

from chatgate.providers.local.cpu import amx_advertised, extra_buffers_set_to

if __name__ == "__main__":
    with extra_buffers_set_to(not amx_advertised()):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
