"""A/B experiments: a model's or a template's traffic split between variants by weight, each
unit (the request's ``user``, else its key) always in the same variant, and the variant applied
to the request before anything else sees it (model, system instruction, temperature,
max_tokens, template version)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from chatgate.config import ExperimentConfig, VariantConfig
from chatgate.gateway.auth import Principal
from chatgate.gateway.registry import ModelRegistry
from chatgate.protocol import ChatCompletionRequest, ModelNotFoundError, validate

__all__ = ["Assignment", "Experiments", "bucket"]


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: str


def bucket(experiment: str, unit: str) -> float:
    """A stable number in [0, 1) for a unit in an experiment (independent across experiments)."""
    digest = hashlib.blake2b(f"{experiment}\0{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _choose(experiment: ExperimentConfig, unit: str) -> VariantConfig:
    point = bucket(experiment.name, unit) * sum(v.weight for v in experiment.variants)
    for variant in experiment.variants:
        point -= variant.weight
        if point < 0:
            return variant
    return experiment.variants[-1]


def _with_system(messages: list[Any], system: str) -> list[Any]:
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            return [*messages[:index], {**message, "content": system}, *messages[index + 1 :]]
    return [{"role": "system", "content": system}, *messages]


class Experiments:
    def __init__(self, experiments: list[ExperimentConfig], registry: ModelRegistry):
        self._registry = registry
        self._by_model: dict[str, ExperimentConfig] = {}
        self._by_prompt: dict[str, ExperimentConfig] = {}
        self.configs = {e.name: e for e in experiments}
        for experiment in experiments:
            if not experiment.enabled:
                continue
            if experiment.model is not None:
                self._by_model[registry.resolve(experiment.model).name] = experiment
            if experiment.prompt is not None:
                self._by_prompt[experiment.prompt] = experiment

    def __bool__(self) -> bool:
        return bool(self._by_model or self._by_prompt)

    def _find(self, request: ChatCompletionRequest) -> ExperimentConfig | None:
        if request.prompt is not None and request.prompt.id in self._by_prompt:
            return self._by_prompt[request.prompt.id]
        try:
            name = self._registry.resolve(request.model).name
        except ModelNotFoundError:  # fails later, with its proper error
            return None
        return self._by_model.get(name)

    def apply(
        self,
        request: ChatCompletionRequest,
        body: dict[str, Any],
        principal: Principal,
        request_id: str,
    ) -> tuple[ChatCompletionRequest, Assignment | None]:
        """The request as its variant asks, and which variant that is (None: no experiment)."""
        experiment = self._find(request)
        if experiment is None:
            return request, None
        key_id = principal.key.id if principal.key is not None else None
        unit = (request.user if experiment.sticky == "user" else None) or key_id or request_id
        variant = _choose(experiment, unit)
        changed = False
        if variant.model is not None:
            body["model"], changed = variant.model, True
        if variant.system is not None:
            body["messages"], changed = (
                _with_system(body.get("messages") or [], variant.system),
                True,
            )
        for name in ("temperature", "max_tokens"):
            value = getattr(variant, name)
            if value is not None:
                body[name], changed = value, True
        if variant.max_tokens is not None:
            body.pop("max_completion_tokens", None)  # the variant's cap is the one that counts
        if variant.prompt_version is not None and isinstance(body.get("prompt"), dict):
            prompt = {k: v for k, v in body["prompt"].items() if k != "label"}
            body["prompt"], changed = {**prompt, "version": variant.prompt_version}, True
        if changed:
            request = validate(ChatCompletionRequest, body)
        return request, Assignment(experiment.name, variant.name)
