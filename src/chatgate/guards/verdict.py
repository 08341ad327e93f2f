"""One verdict shape for every guard, after OpenAI's moderation result: ``flagged``,
``categories`` (name -> bool) and ``category_scores`` (name -> 0..1)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MODERATION_CATEGORIES", "Verdict", "combine"]

MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
"""OpenAI's 13 moderation categories (omni-moderation)."""


@dataclass(slots=True)
class Verdict:
    guard: str
    """Which guard spoke: ``moderation``, ``pii``, ``prompt_injection``, ``checks``."""
    category_scores: dict[str, float] = field(default_factory=dict)
    categories: dict[str, bool] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return any(self.categories.values())

    @property
    def flagged_categories(self) -> list[str]:
        return [name for name, hit in self.categories.items() if hit]

    def as_dict(self) -> dict[str, object]:
        return {
            "guard": self.guard,
            "flagged": self.flagged,
            "categories": self.categories,
            "category_scores": self.category_scores,
        }


def combine(guard: str, verdicts: list[Verdict]) -> Verdict:
    """Several texts' verdicts as one: the highest score per category."""
    merged = Verdict(guard)
    for verdict in verdicts:
        for name, score in verdict.category_scores.items():
            merged.category_scores[name] = max(score, merged.category_scores.get(name, 0.0))
        for name, hit in verdict.categories.items():
            merged.categories[name] = hit or merged.categories.get(name, False)
    return merged
