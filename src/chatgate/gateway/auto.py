"""Routing for cost: an id such as ``auto`` picks a real model per request — by the task the
client names (``x-chatgate-task``), by prompt size, or the key's default — so routine work goes to
a small model."""

from __future__ import annotations

from chatgate.config import AutoModelConfig, AutoRule
from chatgate.gateway.auth import Principal
from chatgate.gateway.registry import ModelRegistry
from chatgate.protocol import ChatCompletionRequest

__all__ = ["AUTO_HEADER", "TASK_HEADER", "AutoModels"]

TASK_HEADER = "x-chatgate-task"
AUTO_HEADER = "x-chatgate-auto-model"


class AutoModels:
    def __init__(self, configs: list[AutoModelConfig], registry: ModelRegistry):
        self._by_name = {config.name: config for config in configs}
        self._registry = registry

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._by_name

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    async def choose(
        self, model_id: str, request: ChatCompletionRequest, task: str | None, principal: Principal
    ) -> str:
        """The model to run: the first rule that matches and names a model the caller may use,
        else the key's ``default_model``, else the configured default (the access stage then
        decides on it, as on any model)."""
        config = self._by_name[model_id]
        for rule in config.rules:
            if self._allowed(rule.model, principal) and await self._matches(rule, request, task):
                return rule.model
        preferred = principal.key.metadata.get("default_model") if principal.key else None
        if (
            isinstance(preferred, str)
            and preferred in self._registry
            and (self._allowed(preferred, principal))
        ):
            return preferred
        return config.default

    def _allowed(self, model_id: str, principal: Principal) -> bool:
        group = self._registry.resolve(model_id)
        return principal.may_use_model(group.name, group.aliases)

    async def _matches(
        self, rule: AutoRule, request: ChatCompletionRequest, task: str | None
    ) -> bool:
        if rule.task is not None:
            tasks = [rule.task] if isinstance(rule.task, str) else rule.task
            if task not in tasks:
                return False
        if rule.max_prompt_tokens is None and rule.min_prompt_tokens is None:
            return True
        counted = await self._registry.resolve(rule.model).provider.count_tokens(request)
        prompt = counted if counted is not None else request.rough_prompt_tokens()
        if rule.max_prompt_tokens is not None and prompt > rule.max_prompt_tokens:
            return False
        return rule.min_prompt_tokens is None or prompt >= rule.min_prompt_tokens
