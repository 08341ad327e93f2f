"""What an evaluation reads: a JSONL dataset of cases and a YAML file of variants, each with
assertions. Validated up front, with errors that name the line and field."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["Assertion", "Case", "DatasetError", "Plan", "Variant", "load_cases", "load_plan"]


class DatasetError(Exception):
    """The dataset or variants file is wrong; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Assertion(_Strict):
    """One check on an answer. ``type`` picks it; ``value`` is what it compares with."""

    type: Literal[
        "equals",
        "contains",
        "icontains",
        "not_contains",
        "regex",
        "json_schema",
        "is_json",
        "not_flagged",
        "max_tokens",
        "max_latency_ms",
        "max_cost",
        "judge",
    ]
    value: Any = None
    """The expected text, pattern, schema, or limit (``judge``: the rubric)."""
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    """``judge``: the score (0..1) the answer needs."""

    @model_validator(mode="after")
    def _has_value(self) -> Assertion:
        if self.type not in ("is_json", "not_flagged") and self.value is None:
            raise ValueError(f"assertion `{self.type}` needs a `value`")
        return self


class Case(_Strict):
    id: str
    messages: list[dict[str, Any]] | None = None
    input: str | None = None
    """Shorthand for one user message."""
    variables: dict[str, Any] | None = None
    """For variants that render a prompt template."""
    expected: str | None = None
    """Shorthand for an ``equals`` assertion."""
    assertions: list[Assertion] = Field(default=[], alias="assert")

    @model_validator(mode="after")
    def _has_input(self) -> Case:
        if self.messages is None and self.input is None and self.variables is None:
            raise ValueError("a case needs `messages`, `input` or `variables`")
        return self

    def all_assertions(self, shared: list[Assertion]) -> list[Assertion]:
        expected = [Assertion(type="equals", value=self.expected)] if self.expected else []
        return [*shared, *expected, *self.assertions]


class Variant(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    model: str
    system: str | None = None
    prompt: dict[str, Any] | None = None
    """A prompt reference (``{"id", "version" | "label"}``); the case's variables fill it."""
    params: dict[str, Any] = {}
    """Request parameters (temperature, max_tokens, seed, ...)."""

    def body(self, case: Case) -> dict[str, Any]:
        messages = list(case.messages or [])
        if case.input is not None:
            messages.append({"role": "user", "content": case.input})
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        body: dict[str, Any] = {**self.params, "model": self.model, "messages": messages}
        if self.prompt is not None:
            body["prompt"] = {**self.prompt, "variables": case.variables or {}}
        return body

    def fingerprint(self) -> str:
        return hashlib.sha256(
            orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()[:16]


class Judge(_Strict):
    model: str
    """The model that grades answers for ``judge`` assertions."""


class Plan(_Strict):
    variants: Annotated[list[Variant], Field(min_length=1)]
    assertions: list[Assertion] = Field(default=[], alias="assert")
    """Applied to every case."""
    judge: Judge | None = None

    @model_validator(mode="after")
    def _unique(self) -> Plan:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        uses_judge = any(a.type == "judge" for a in self.assertions)
        if uses_judge and self.judge is None:
            raise ValueError("`judge` assertions need a `judge: {model}`")
        return self


def _where(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return f"{field}: {first['msg']}" if field else first["msg"]


def load_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc})") from None
        if isinstance(data, dict):
            data.setdefault("id", f"line-{number}")
            data["id"] = str(data["id"])
        try:
            case = Case.model_validate(data)
        except ValidationError as exc:
            raise DatasetError(f"{path}:{number}: {_where(exc)}") from None
        if case.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: no cases")
    return cases


def load_plan(path: Path) -> Plan:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if isinstance(data, list):
        data = {"variants": data}
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise DatasetError(f"{path}: {_where(exc)}") from None
