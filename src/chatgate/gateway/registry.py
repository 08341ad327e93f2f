"""Model ids (names and aliases) mapped to the deployments that serve them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from chatgate.config import (
    LocalModelConfig,
    OpenAICompatModelConfig,
    Settings,
    resolve_secret,
)
from chatgate.protocol import ModelNotFoundError, ModelObject
from chatgate.providers import LocalProvider, OpenAICompatProvider, Provider, ProviderState

__all__ = ["Deployment", "ModelRegistry"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """A public model and the provider instance that serves it."""

    name: str
    provider: Provider
    config: LocalModelConfig | OpenAICompatModelConfig
    created: int

    def model_object(self) -> ModelObject:
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.config.owned_by,
        }


def _provider(config: LocalModelConfig | OpenAICompatModelConfig) -> Provider:
    if isinstance(config, LocalModelConfig):
        return LocalProvider(config)
    return OpenAICompatProvider(config, resolve_secret(config.api_key_env, config.api_key_file))


class ModelRegistry:
    def __init__(self, deployments: Iterable[Deployment]):
        self._deployments = list(deployments)
        self._by_id: dict[str, Deployment] = {}
        for deployment in self._deployments:
            for model_id in (deployment.name, *deployment.config.aliases):
                self._by_id[model_id] = deployment

    @classmethod
    def from_settings(cls, settings: Settings, *, created: int) -> ModelRegistry:
        return cls(Deployment(m.name, _provider(m), m, created) for m in settings.models)

    @property
    def deployments(self) -> list[Deployment]:
        return list(self._deployments)

    def resolve(self, model_id: str) -> Deployment:
        try:
            return self._by_id[model_id]
        except KeyError:
            raise ModelNotFoundError(model_id) from None

    def models(self) -> list[ModelObject]:
        return [d.model_object() for d in self._deployments]

    def model(self, model_id: str) -> ModelObject:
        deployment = self.resolve(model_id)
        obj = deployment.model_object()
        obj["id"] = model_id  # an alias answers under the id it was asked by
        return obj

    def states(self) -> dict[str, ProviderState]:
        return {d.name: d.provider.state for d in self._deployments}

    async def start(self) -> None:
        await asyncio.gather(*(d.provider.start() for d in self._deployments))

    async def close(self) -> None:
        await asyncio.gather(*(d.provider.close() for d in self._deployments))
