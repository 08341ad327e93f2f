"""Checking one answer against its assertions. Most are local; ``not_flagged`` asks the gateway's
``/v1/moderations`` and ``judge`` asks a model (LLM-as-judge) through the gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
import orjson

from chatgate.evals.dataset import Assertion

__all__ = ["Answer", "Checked", "Gateway", "check"]

JUDGE_PROMPT = """You grade an AI assistant's answer against a rubric.
Rubric: {rubric}

Question and context:
{question}

Answer to grade:
{answer}

Reply with one line: SCORE: <a number from 0 to 1>, then one short sentence of reason."""
_SCORE = re.compile(r"SCORE:\s*([01](?:\.\d+)?)", re.IGNORECASE)


@dataclass(slots=True)
class Answer:
    text: str
    completion_tokens: int
    latency_ms: float
    cost: float | None
    question: str


@dataclass(frozen=True, slots=True)
class Checked:
    type: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "passed": self.passed, "detail": self.detail}


class Gateway(Protocol):
    async def moderate(self, text: str) -> list[str]:
        """Flagged categories of ``text``."""
        ...

    async def complete(self, body: dict[str, Any]) -> str: ...


def _json_of(text: str) -> tuple[Any, str | None]:
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"


async def check(
    assertion: Assertion, answer: Answer, gateway: Gateway, judge: str | None
) -> Checked:
    kind, value, text = assertion.type, assertion.value, answer.text
    if kind == "equals":
        return Checked(kind, text.strip() == str(value).strip())
    if kind == "contains":
        return Checked(kind, str(value) in text)
    if kind == "icontains":
        return Checked(kind, str(value).lower() in text.lower())
    if kind == "not_contains":
        return Checked(kind, str(value) not in text)
    if kind == "regex":
        return Checked(kind, re.search(str(value), text) is not None)
    if kind in ("is_json", "json_schema"):
        document, problem = _json_of(text)
        if problem is not None:
            return Checked(kind, False, problem)
        if kind == "json_schema":
            errors = list(jsonschema.Draft202012Validator(value).iter_errors(document))
            return Checked(kind, not errors, errors[0].message if errors else "")
        return Checked(kind, True)
    if kind == "max_tokens":
        return Checked(
            kind, answer.completion_tokens <= float(value), str(answer.completion_tokens)
        )
    if kind == "max_latency_ms":
        return Checked(kind, answer.latency_ms <= float(value), f"{answer.latency_ms:.0f} ms")
    if kind == "max_cost":
        cost = answer.cost or 0.0
        return Checked(kind, cost <= float(value), f"{cost:.6f}")
    if kind == "not_flagged":
        flagged = await gateway.moderate(text)
        return Checked(kind, not flagged, ", ".join(flagged))
    assert kind == "judge"
    if judge is None:
        return Checked(kind, False, "no judge model configured")
    prompt = JUDGE_PROMPT.format(rubric=value, question=answer.question, answer=text)
    verdict = await gateway.complete(
        {"model": judge, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    )
    match = _SCORE.search(verdict)
    if match is None:
        return Checked(kind, False, f"the judge gave no score: {verdict[:200]!r}")
    score = float(match.group(1))
    return Checked(kind, score >= assertion.threshold, f"score {score:g}")
