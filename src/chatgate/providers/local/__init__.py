"""The embedded model provider (llama.cpp)."""

from chatgate.providers.local.provider import LocalProvider, default_model_path

__all__ = ["LocalProvider", "default_model_path"]
