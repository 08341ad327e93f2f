"""A prompt version compiled once: its message templates, typed variables and defaults.

``compile_prompt`` checks a definition when it is pushed (templates parse, every variable they use
is declared, the schema is valid, defaults fit it); ``CompiledPrompt.render`` turns variables into
chat messages, refusing unknown or invalid variables with an error that names them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
from jinja2 import TemplateSyntaxError, meta

from chatgate.guards.checks import OutputChecker
from chatgate.prompts.sandbox import BoundedEnvironment, TemplateLimitError
from chatgate.protocol import InvalidRequestError
from chatgate.protocol.prompts import PromptDefinition

__all__ = ["CompiledPrompt", "PromptError", "compile_prompt", "definition_hash"]

_ENVIRONMENT = BoundedEnvironment()
_BUILTINS = frozenset(_ENVIRONMENT.globals) | {"loop"}


class PromptError(InvalidRequestError):
    """A template or its variables are wrong (400, naming the parameter)."""


def definition_hash(definition: PromptDefinition) -> str:
    """A stable digest of a definition's content (pushing the same content twice is a no-op)."""
    canonical = orjson.dumps(
        definition.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    id: str
    version: int
    definition: PromptDefinition
    declared: frozenset[str]
    defaults: dict[str, Any]
    validator: jsonschema.protocols.Validator | None
    checker: OutputChecker | None = None
    """The version's output checks, compiled once (regexes, JSON Schema)."""

    def render(self, variables: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The chat messages of this version with ``variables`` filled in."""
        given = dict(variables or {})
        unknown = sorted(set(given) - self.declared)
        if unknown:
            raise PromptError(
                f"Unknown variable `{unknown[0]}` for prompt `{self.id}` version {self.version}"
                f" (it declares: {sorted(self.declared) or 'no variables'}).",
                param=f"prompt.variables.{unknown[0]}",
                code="unknown_prompt_variable",
            )
        values = {**self.defaults, **given}
        if self.validator is not None:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(values))
            if error is not None:
                where = ".".join(str(p) for p in error.absolute_path)
                missing = error.validator == "required"
                name = where or (error.message.split("'")[1] if missing else "")
                raise PromptError(
                    f"Invalid variables for prompt `{self.id}` version {self.version}: "
                    f"{error.message}" + (f" (at `{where}`)" if where else "") + ".",
                    param=f"prompt.variables.{name}" if name else "prompt.variables",
                    code="invalid_prompt_variables",
                )
        messages = []
        for index, message in enumerate(self.definition.messages):
            try:
                text = _ENVIRONMENT.render(message.content, values)
            except TemplateLimitError as exc:
                raise PromptError(
                    f"Prompt `{self.id}` version {self.version} broke a template limit: {exc}.",
                    param="prompt",
                    code="prompt_template_limit",
                ) from None
            except Exception as exc:  # a template's runtime error (a bad filter argument, ...)
                raise PromptError(
                    f"Prompt `{self.id}` version {self.version} failed to render message "
                    f"{index}: {exc}.",
                    param="prompt",
                    code="prompt_render_failed",
                ) from None
            messages.append({"role": message.role, "content": text})
        return messages


def compile_prompt(prompt_id: str, version: int, definition: PromptDefinition) -> CompiledPrompt:
    """Check and compile a definition; ``PromptError`` names what is wrong."""
    schema = definition.variables
    validator = None
    declared: frozenset[str] = frozenset()
    defaults: dict[str, Any] = {}
    if schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise PromptError(
                f"`variables` is not a valid JSON Schema: {exc.message}", param="variables"
            ) from None
        if schema.get("type", "object") != "object" or not isinstance(
            schema.get("properties", {}), dict
        ):
            raise PromptError(
                "`variables` must be an object schema with `properties`.", param="variables"
            )
        properties: dict[str, Any] = schema.get("properties", {})
        declared = frozenset(properties)
        defaults = {
            name: spec["default"]
            for name, spec in properties.items()
            if isinstance(spec, dict) and "default" in spec
        }
        validator = jsonschema.Draft202012Validator(schema)
    used: set[str] = set()
    for index, message in enumerate(definition.messages):
        try:
            parsed = _ENVIRONMENT.parse(message.content)
        except TemplateSyntaxError as exc:
            raise PromptError(
                f"messages[{index}].content: template syntax error on line {exc.lineno}: "
                f"{exc.message}",
                param=f"messages[{index}].content",
            ) from None
        used |= meta.find_undeclared_variables(parsed) - _BUILTINS
    undeclared = sorted(used - declared)
    if undeclared:
        raise PromptError(
            f"The messages use variables that `variables` does not declare: {undeclared}.",
            param="variables",
        )
    checker = OutputChecker(definition.checks) if definition.checks is not None else None
    compiled = CompiledPrompt(
        prompt_id, version, definition, declared, defaults, validator, checker
    )
    if validator is not None and defaults:
        error = jsonschema.exceptions.best_match(validator.iter_errors(defaults))
        if error is not None and error.validator != "required":
            raise PromptError(
                f"A default does not fit its schema: {error.message}", param="variables"
            )
    return compiled
