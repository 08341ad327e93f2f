"""Prompt templates on the wire: the ``prompt`` reference a chat request may carry (OpenAI's
Responses-style ``{"id", "version", "variables"}``, plus ``label``), and the admin API's shapes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

__all__ = [
    "LABEL",
    "PROMPT_ID",
    "OutputChecks",
    "PromptDefinition",
    "PromptLabelRequest",
    "PromptPush",
    "PromptReference",
    "PromptTemplateMessage",
    "PromptVersionObject",
]

PROMPT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LABEL = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
LABEL = re.compile(_LABEL)
_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
        "response_format",
        "n",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
    }
)


_Version = Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[1-9][0-9]*$")]


class PromptReference(BaseModel):
    """``prompt`` on a chat request: which template to render, and its variables."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=128)]
    version: (
        Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[1-9][0-9]*$")] | None
    ) = None
    label: Annotated[str, Field(pattern=_LABEL)] | None = None
    variables: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> PromptReference:
        if self.version is not None and self.label is not None:
            raise ValueError("give `prompt.version` or `prompt.label`, not both")
        return self

    @property
    def version_number(self) -> int | None:
        return None if self.version is None else int(self.version)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptTemplateMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(max_length=65_536)]
    """A Jinja2 template (sandboxed; see the README's prompt templates section)."""


class OutputChecks(_Strict):
    """What every answer rendered from this template must satisfy (checked by the output
    guard, streams included)."""

    json_schema: dict[str, Any] | None = None
    """The answer must be JSON valid against this schema."""
    min_length: Annotated[int, Field(ge=0)] | None = None
    max_length: Annotated[int, Field(ge=1)] | None = None
    """Characters of the answer."""
    must_match: list[str] = []
    """Regular expressions the answer must match (each, somewhere)."""
    must_not_match: list[str] = []
    """Regular expressions the answer must not match anywhere."""

    @field_validator("must_match", "must_not_match")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return patterns


class PromptDefinition(_Strict):
    """One version of a prompt template, as pushed (immutable once stored)."""

    messages: Annotated[list[PromptTemplateMessage], Field(min_length=1, max_length=64)]
    variables: dict[str, Any] | None = None
    """A JSON Schema for the variables (``type: object`` with ``properties``; defaults go in
    each property's ``default``). Every variable the messages use must be declared here."""
    parameters: dict[str, Any] = {}
    """Defaults for request parameters (temperature, max_tokens, response_format, ...); the
    request's own values win."""
    checks: OutputChecks | None = None
    guard_policy: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The `guards.policies` entry for requests rendered from this template."""
    description: Annotated[str, Field(max_length=2000)] | None = None

    @field_validator("parameters")
    @classmethod
    def _known_parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - _PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; allowed: {sorted(_PARAMETERS)}")
        return value


class PromptPush(PromptDefinition):
    """``POST /admin/prompts``: a definition and the prompt id it is a version of."""

    id: Annotated[str, Field(min_length=1, max_length=128)]


class PromptLabelRequest(_Strict):
    """Move a label to a version; with ``expected_version``, only if the label still points
    there (compare-and-swap; ``0`` means the label must not exist yet)."""

    version: Annotated[int, Field(ge=1)]
    expected_version: Annotated[int, Field(ge=0)] | None = None


class PromptVersionObject(TypedDict):
    object: Literal["prompt.version"]
    id: str
    version: int
    labels: list[str]
    created_at: int
    created_by: str
    definition: dict[str, Any]
