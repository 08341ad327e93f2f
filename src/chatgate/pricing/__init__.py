"""What a request costs: a price table (defaults for OpenAI models, overridable per model)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from chatgate.protocol import CompletionUsage

__all__ = ["FREE", "Price", "PriceTable"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, usage: CompletionUsage) -> float:
        prompt = usage["prompt_tokens"]
        cached = min(prompt, (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
        return (
            (prompt - cached) * self.input
            + cached * self.cached_input
            + usage["completion_tokens"] * self.output
        ) / 1_000_000

    def most(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The most a request may cost: nothing cached, every completion token used."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


FREE = Price(0.0, 0.0, 0.0)


def _price(values: dict[str, Any]) -> Price:
    return Price(
        float(values["input"]),
        float(values.get("cached_input", values["input"])),
        float(values["output"]),
    )


class PriceTable:
    def __init__(self, prices: dict[str, Price]):
        self._prices = prices
        self._by_length = sorted(prices, key=len, reverse=True)

    @classmethod
    def defaults(cls) -> PriceTable:
        text = (resources.files("chatgate.pricing") / "prices.yaml").read_text(encoding="utf-8")
        return cls({name: _price(values) for name, values in yaml.safe_load(text).items()})

    def lookup(self, model: str) -> Price | None:
        """The price of a model id: exact, else the longest known prefix (a dated snapshot such
        as ``gpt-4o-2024-08-06`` is priced as ``gpt-4o``)."""
        name = model.rsplit("/", 1)[-1]
        if name in self._prices:
            return self._prices[name]
        for known in self._by_length:
            if name.startswith(known + "-"):
                return self._prices[known]
        return None
