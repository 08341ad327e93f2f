"""Model ids (names and aliases) mapped to models, each served by one or more deployments."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from chatgate.config import (
    DegradedResponse,
    LocalModelConfig,
    OpenAICompatModelConfig,
    Settings,
    resolve_secret,
)
from chatgate.gateway.breaker import Breaker
from chatgate.pricing import FREE, Price, PriceTable
from chatgate.protocol import ModelNotFoundError, ModelObject
from chatgate.providers import LocalProvider, OpenAICompatProvider, Provider, ProviderState

__all__ = ["Deployment", "ModelGroup", "ModelRegistry"]

ModelConfig = LocalModelConfig | OpenAICompatModelConfig


@dataclass(slots=True, eq=False)
class Deployment:
    """One provider instance serving a model (a model may have several)."""

    name: str
    provider: Provider
    config: ModelConfig
    breaker: Breaker
    price: Price | None
    """USD per 1M tokens; None when unknown (an upstream model not in the price table)."""
    in_flight: int = 0


@dataclass(slots=True, eq=False)
class ModelGroup:
    """A public model: its deployments, and the settings read from its first config entry."""

    name: str
    deployments: list[Deployment]
    created: int
    aliases: list[str] = field(default_factory=list)

    @property
    def config(self) -> ModelConfig:
        return self.deployments[0].config

    @property
    def fallbacks(self) -> list[str]:
        return self.config.fallbacks

    @property
    def ttft_budget(self) -> float | None:
        return self.config.ttft_budget

    @property
    def degraded_response(self) -> DegradedResponse | None:
        return self.config.degraded_response

    @property
    def most_expensive(self) -> Price | None:
        """The dearest deployment's price (what a reservation must cover); None if unknown."""
        prices = [d.price for d in self.deployments if d.price is not None]
        if len(prices) < len(self.deployments):
            return None
        return max(prices, key=lambda p: (p.output, p.input))

    @property
    def provider(self) -> Provider:
        """A provider of this model, for what any deployment answers alike (token counts)."""
        return self.deployments[0].provider

    def model_object(self) -> ModelObject:
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.config.owned_by,
        }

    def state(self) -> ProviderState:
        states = {d.provider.state for d in self.deployments}
        if "ready" in states:
            return "ready"
        return "loading" if "loading" in states else "failed"


def _price(config: ModelConfig, table: PriceTable) -> Price | None:
    if config.pricing is not None:
        spec = config.pricing
        cached = spec.input if spec.cached_input is None else spec.cached_input
        return Price(spec.input, cached, spec.output)
    if isinstance(config, LocalModelConfig):
        return FREE
    return table.lookup(config.upstream_model or config.name)


def _provider(config: ModelConfig) -> Provider:
    if isinstance(config, LocalModelConfig):
        return LocalProvider(config)
    return OpenAICompatProvider(config, resolve_secret(config.api_key_env, config.api_key_file))


class ModelRegistry:
    def __init__(self, groups: Iterable[ModelGroup]):
        self._groups = list(groups)
        self._by_id: dict[str, ModelGroup] = {}
        for group in self._groups:
            for model_id in (group.name, *group.aliases):
                self._by_id[model_id] = group

    @classmethod
    def from_settings(cls, settings: Settings, *, created: int) -> ModelRegistry:
        groups: dict[str, ModelGroup] = {}
        routing = settings.routing
        prices = PriceTable.defaults()
        for config in settings.models:
            deployment = Deployment(
                config.name,
                _provider(config),
                config,
                Breaker(routing.breaker_failures, routing.breaker_cooldown),
                _price(config, prices),
            )
            group = groups.get(config.name)
            if group is None:
                group = groups[config.name] = ModelGroup(config.name, [], created)
            group.deployments.append(deployment)
            group.aliases += [a for a in config.aliases if a not in group.aliases]
        return cls(groups.values())

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._by_id

    @property
    def groups(self) -> list[ModelGroup]:
        return list(self._groups)

    def resolve(self, model_id: str) -> ModelGroup:
        try:
            return self._by_id[model_id]
        except KeyError:
            raise ModelNotFoundError(model_id) from None

    def models(self) -> list[ModelObject]:
        return [g.model_object() for g in self._groups]

    def model(self, model_id: str) -> ModelObject:
        obj = self.resolve(model_id).model_object()
        obj["id"] = model_id  # an alias answers under the id it was asked by
        return obj

    def states(self) -> dict[str, ProviderState]:
        return {g.name: g.state() for g in self._groups}

    def _deployments(self) -> list[Deployment]:
        return [d for g in self._groups for d in g.deployments]

    async def start(self) -> None:
        await asyncio.gather(*(d.provider.start() for d in self._deployments()))

    async def close(self) -> None:
        await asyncio.gather(*(d.provider.close() for d in self._deployments()))
