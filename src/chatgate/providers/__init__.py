"""Model backends behind one interface (see ``base.Provider``)."""

from chatgate.providers.base import Capabilities, ChatCall, Provider, ProviderState, ProviderStats
from chatgate.providers.local import LocalProvider
from chatgate.providers.openai_compat import OpenAICompatProvider

__all__ = [
    "Capabilities",
    "ChatCall",
    "LocalProvider",
    "OpenAICompatProvider",
    "Provider",
    "ProviderState",
    "ProviderStats",
]
