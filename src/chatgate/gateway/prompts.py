"""Prompt templates at work: resolving a request's ``prompt`` reference to a compiled version,
rendering it into the request's first messages, and pushing or labelling versions (admin API,
CLI, and the folder of template files loaded at start).

Versions never change, so compiled ones are cached for good; label lookups are cached until the
store's ``prompts`` version moves (checked at most every ``poll_interval`` seconds), so a label
moved through one replica reaches the others within that interval.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from chatgate.guards.checks import OutputChecker
from chatgate.prompts.template import CompiledPrompt, PromptError, compile_prompt, definition_hash
from chatgate.protocol import ChatCompletionRequest, validate
from chatgate.protocol.prompts import (
    LABEL,
    PROMPT_ID,
    PromptDefinition,
    PromptReference,
)
from chatgate.state.prompts import PromptStore, StoredVersion

__all__ = ["DEFAULT_LABEL", "PromptLibrary", "PromptUse", "check_directory", "load_prompt_file"]

log = logging.getLogger("chatgate.prompts")

DEFAULT_LABEL = "production"
"""The label a reference without ``version`` or ``label`` resolves through."""
_COMPILED_CACHE = 1024


@dataclass(frozen=True, slots=True)
class PromptUse:
    """Which template a request was rendered from (for the request log and output checks)."""

    id: str
    version: int
    label: str | None
    checker: OutputChecker | None
    """The template's output checks, compiled with the version."""
    guard_policy: str | None = None


def _check_id(prompt_id: str) -> None:
    if not PROMPT_ID.match(prompt_id):
        raise PromptError(
            f"Invalid prompt id `{prompt_id}`: use letters, digits, `_`, `.` and `-` (at most "
            "128, starting with a letter or digit).",
            param="id",
        )


def load_prompt_file(path: Path) -> tuple[str, PromptDefinition, list[str]]:
    """A template file (YAML or JSON): its prompt id (``id``, else the file name), definition
    and the labels it asks for."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"{path}: cannot read the template file: {exc}") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: a template file holds a mapping")
    prompt_id = str(data.pop("id", path.stem))
    labels = data.pop("labels", [])
    if not isinstance(labels, list) or not all(
        isinstance(x, str) and LABEL.match(x) for x in labels
    ):
        raise PromptError(
            f"{path}: `labels` is a list of label names (lower-case letters, digits, `_.-`)",
            param="labels",
        )
    try:
        definition = PromptDefinition.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PromptError(f"{path}: `{where}`: {first['msg']}", param=where) from None
    return prompt_id, definition, labels


def _template_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    except OSError as exc:
        raise PromptError(f"cannot read {directory}: {exc.strerror}") from None


def check_directory(directory: Path) -> None:
    """Every template file in ``directory`` loads and compiles (``PromptError`` otherwise)."""
    for path in _template_files(directory):
        prompt_id, definition, _ = load_prompt_file(path)
        _check_id(prompt_id)
        try:
            compile_prompt(prompt_id, 0, definition)
        except PromptError as exc:
            raise PromptError(f"{path}: {exc.message}", param=exc.param) from None


class PromptLibrary:
    def __init__(
        self,
        store: PromptStore,
        *,
        poll_interval: float = 1.0,
        guard_policies: frozenset[str] | None = None,
    ):
        self.store = store
        self._guard_policies = guard_policies
        self._interval = poll_interval
        self._compiled: dict[tuple[str, int], CompiledPrompt] = {}
        self._labels: dict[tuple[str, str], int] = {}
        self._seen_version = -1
        self._checked_at = 0.0

    # --- requests -------------------------------------------------------------------------

    async def apply(
        self, request: ChatCompletionRequest, body: dict[str, Any]
    ) -> tuple[ChatCompletionRequest, PromptUse | None]:
        """Render ``request.prompt`` (if any) into the start of its messages, fill in the
        template's default parameters, and drop ``prompt`` from what goes upstream."""
        reference = request.prompt
        body.pop("prompt", None)
        if reference is None:
            return request, None
        compiled, label = await self.resolve(reference)
        rendered = compiled.render(reference.variables)
        body["messages"] = rendered + list(body.get("messages") or [])
        for name, value in compiled.definition.parameters.items():
            body.setdefault(name, value)
        definition = compiled.definition
        use = PromptUse(
            compiled.id, compiled.version, label, compiled.checker, definition.guard_policy
        )
        return validate(ChatCompletionRequest, body), use

    async def resolve(self, reference: PromptReference) -> tuple[CompiledPrompt, str | None]:
        await self._refresh()
        prompt_id = reference.id
        number = reference.version_number
        label = None
        if number is None:
            label = reference.label or DEFAULT_LABEL
            number = self._labels.get((prompt_id, label))
            if number is None:
                number = await self.store.label(prompt_id, label)
                if number is None:
                    await self._unknown_prompt(reference)
                    raise PromptError(
                        f"Prompt `{prompt_id}` has no label `{label}`"
                        + ("" if reference.label else " (the default; give a version or label)")
                        + ".",
                        param="prompt.label" if reference.label else "prompt",
                        code="prompt_label_not_found",
                    )
                self._labels[(prompt_id, label)] = number
        return await self._compiled_version(reference, number), label

    async def _compiled_version(self, reference: PromptReference, number: int) -> CompiledPrompt:
        key = (reference.id, number)
        compiled = self._compiled.get(key)
        if compiled is not None:
            return compiled
        stored = await self.store.get(reference.id, number)
        if stored is None:
            await self._unknown_prompt(reference)
            raise PromptError(
                f"Prompt `{reference.id}` has no version {number}.",
                param="prompt.version",
                code="prompt_version_not_found",
            )
        compiled = compile_prompt(
            reference.id, number, PromptDefinition.model_validate(stored.definition)
        )
        if len(self._compiled) >= _COMPILED_CACHE:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = compiled
        return compiled

    async def _unknown_prompt(self, reference: PromptReference) -> None:
        if not await self.store.exists(reference.id):
            raise PromptError(
                f"Unknown prompt `{reference.id}`.", param="prompt.id", code="prompt_not_found"
            )

    async def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._interval:
            return
        self._checked_at = now
        version = await self.store.version()
        if version != self._seen_version:
            self._labels.clear()
            self._seen_version = version

    def invalidate(self) -> None:
        """This replica changed a label: forget cached lookups now."""
        self._labels.clear()
        self._checked_at = 0.0

    # --- authoring ------------------------------------------------------------------------

    async def push(
        self, prompt_id: str, definition: PromptDefinition, *, actor: str
    ) -> tuple[StoredVersion, bool]:
        """Check and store a version (the same content again finds the existing one)."""
        _check_id(prompt_id)
        compile_prompt(prompt_id, 0, definition)  # raises PromptError naming the problem
        policy = definition.guard_policy
        if self._guard_policies is not None and policy and policy not in self._guard_policies:
            raise PromptError(
                f"Unknown guard policy `{policy}` (configured: {sorted(self._guard_policies)}).",
                param="guard_policy",
            )
        stored, created = await self.store.push(
            prompt_id,
            orjson.loads(orjson.dumps(definition.model_dump(mode="json", exclude_none=True))),
            definition_hash(definition),
            actor=actor,
        )
        self.invalidate()
        return stored, created

    async def load_directory(self, directory: Path, *, actor: str = "config") -> int:
        """Push every template file in ``directory`` (``*.yaml``, ``*.yml``, ``*.json``) and
        move the labels each asks for; returns how many versions were new."""
        created = 0
        files = _template_files(directory)
        for path in files:
            prompt_id, definition, labels = load_prompt_file(path)
            stored, new = await self.push(prompt_id, definition, actor=actor)
            created += new
            for label in labels:
                await self.store.set_label(prompt_id, label, stored.version, actor=actor)
        if files:
            log.info("prompt templates: %d files, %d new versions", len(files), created)
        self.invalidate()
        return created
