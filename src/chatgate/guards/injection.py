"""Prompt-injection heuristics: phrases that try to override the system's instructions, extract
them, or switch the model into an "unrestricted" persona. Scored like moderation (weights that
add up, flagged at the threshold) under the one category ``prompt_injection``."""

from __future__ import annotations

import re

from chatgate.guards.verdict import Verdict

__all__ = ["InjectionDetector"]

# (weight, trigger words, pattern): a pattern runs only when the lower-cased text holds one of
# its trigger words (a set lookup), and matches the lower-cased text.
_RULES: tuple[tuple[float, str, str], ...] = (
    (
        0.85,
        "ignore disregard forget override bypass",
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,30}\b(?:previous|prior|"
        r"above|earlier|preceding|all|your|system|the)\b[^.\n]{0,20}\b(?:instructions?|prompts?|"
        r"rules|directives|guidelines|messages|context)\b",
    ),
    (
        0.8,
        "reveal show print repeat output tell what leak dump",
        r"\b(?:reveal|show|print|repeat|output|tell me|what (?:is|are)|leak|dump)\b[^.\n]{0,30}"
        r"\b(?:your|the)\b[^.\n]{0,15}\b(?:system prompt|initial prompt|hidden (?:prompt|"
        r"instructions)|original instructions|instructions above|developer message)\b",
    ),
    (
        0.8,
        "dan developer unrestricted unfiltered jailbroken jailbreak jailbreaking bound anything",
        r"\byou are (?:now )?(?:dan|in developer mode|an? (?:unrestricted|unfiltered|jailbroken)"
        r"|no longer bound)\b|\bdo anything now\b|\bjailbreak(?:ed|ing)?\b",
    ),
    (
        0.6,
        "pretend act imagine",
        r"\b(?:pretend|act as if|imagine) (?:that )?(?:you have no|there are no|you are not "
        r"bound by)\b[^.\n]{0,20}\b(?:rules|restrictions|guidelines|filters|policies)\b",
    ),
    (
        0.6,
        "system instruction instructions im_start begin",
        r"(?:^|\n)\s*(?:#{2,}|\[|<\|?)\s*(?:system|instructions?|im_start)\b|</?system>"
        r"|\bbegin (?:new )?system prompt\b",
    ),
    (0.5, "new from", r"\bnew instructions?:|\bfrom now on,? (?:you|your) (?:will|must|are)\b"),
)


_WORD = re.compile(r"[a-z_]+")


class InjectionDetector:
    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self._rules = [(w, frozenset(t.split()), re.compile(p)) for w, t, p in _RULES]

    def classify(self, text: str) -> Verdict:
        lowered = text.lower()
        words = set(_WORD.findall(lowered))
        miss = 1.0
        for weight, triggers, pattern in self._rules:
            if not triggers.isdisjoint(words) and pattern.search(lowered):
                miss *= 1.0 - weight
        score = round(1.0 - miss, 6)
        return Verdict(
            "prompt_injection",
            {"prompt_injection": score},
            {"prompt_injection": score >= self.threshold},
        )
