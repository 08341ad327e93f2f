"""Prompt templates as values: the bounded Jinja2 sandbox and compiled template versions."""

from chatgate.prompts.sandbox import BoundedEnvironment, TemplateLimitError
from chatgate.prompts.template import CompiledPrompt, PromptError, compile_prompt, definition_hash

__all__ = [
    "BoundedEnvironment",
    "CompiledPrompt",
    "PromptError",
    "TemplateLimitError",
    "compile_prompt",
    "definition_hash",
]
