"""``/admin/prompts``: push versions, read them, move labels (compare-and-swap), roll back, and
preview a rendering (master key)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import require_admin
from chatgate.api.render import json_response
from chatgate.gateway import Authenticator
from chatgate.gateway.prompts import PromptLibrary
from chatgate.protocol import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    parse_json_object,
    validate,
)
from chatgate.protocol.prompts import (
    LABEL,
    PromptDefinition,
    PromptLabelRequest,
    PromptPush,
    PromptReference,
    PromptVersionObject,
)
from chatgate.state.prompts import LabelConflict, StoredVersion

__all__ = ["PromptEndpoints", "version_object"]


class _Preview(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = None
    label: str | None = None
    variables: dict[str, Any] | None = None


def version_object(stored: StoredVersion) -> PromptVersionObject:
    return {
        "object": "prompt.version",
        "id": stored.prompt_id,
        "version": stored.version,
        "labels": list(stored.labels),
        "created_at": int(stored.created_at),
        "created_by": stored.created_by,
        "definition": stored.definition,
    }


def _label_moved(prompt_id: str, label: str, version: int, previous: int | None) -> Response:
    return json_response(
        {
            "object": "prompt.label",
            "id": prompt_id,
            "label": label,
            "version": version,
            "previous_version": previous,
        }
    )


def _missing(prompt_id: str) -> NotFoundError:
    return NotFoundError(f"No prompt `{prompt_id}`.", param="id", code="prompt_not_found")


def _label(request: Request) -> str:
    label: str = request.path_params["label"]
    if not LABEL.match(label):
        raise InvalidRequestError(
            f"Invalid label `{label}`: lower-case letters, digits, `_`, `.`, `-`.", param="label"
        )
    return label


class PromptEndpoints:
    def __init__(self, library: PromptLibrary, authenticator: Authenticator):
        self._library = library
        self._store = library.store
        self._auth = authenticator

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        return parse_json_object(raw) if raw.strip() else {}

    async def push(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        push = validate(PromptPush, await self._body(request))
        definition = PromptDefinition.model_validate(push.model_dump(exclude={"id"}))
        stored, created = await self._library.push(push.id, definition, actor=actor)
        current = await self._store.get(stored.prompt_id, stored.version)
        assert current is not None
        return json_response(version_object(current), 201 if created else 200)

    async def list_prompts(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        data = [
            {
                "object": "prompt",
                "id": s.prompt_id,
                "versions": s.versions,
                "labels": s.labels,
                "updated_at": int(s.latest_at),
            }
            for s in await self._store.list_prompts()
        ]
        return json_response({"object": "list", "data": data})

    async def get_prompt(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        prompt_id = request.path_params["prompt_id"]
        versions = await self._store.versions(prompt_id)
        if not versions:
            raise _missing(prompt_id)
        return json_response(
            {
                "object": "prompt",
                "id": prompt_id,
                "labels": await self._store.labels(prompt_id),
                "versions": [version_object(v) for v in versions],
            }
        )

    async def get_version(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        prompt_id = request.path_params["prompt_id"]
        try:
            number = int(request.path_params["version"])
        except ValueError:
            raise InvalidRequestError("`version` is a number.", param="version") from None
        stored = await self._store.get(prompt_id, number)
        if stored is None:
            raise NotFoundError(
                f"Prompt `{prompt_id}` has no version {number}.",
                param="version",
                code="prompt_version_not_found",
            )
        return json_response(version_object(stored))

    async def set_label(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        prompt_id, label = request.path_params["prompt_id"], _label(request)
        move = validate(PromptLabelRequest, await self._body(request))
        try:
            previous = await self._store.set_label(
                prompt_id, label, move.version, expected=move.expected_version, actor=actor
            )
        except LookupError:
            if not await self._store.exists(prompt_id):
                raise _missing(prompt_id) from None
            raise NotFoundError(
                f"Prompt `{prompt_id}` has no version {move.version}.",
                param="version",
                code="prompt_version_not_found",
            ) from None
        except LabelConflict as exc:
            raise ConflictError(
                f"Label `{label}` of prompt `{prompt_id}` points to version {exc.current}, not "
                f"{move.expected_version}: read it again and retry.",
                param="expected_version",
                code="label_conflict",
            ) from None
        self._library.invalidate()
        return _label_moved(prompt_id, label, move.version, previous)

    async def rollback(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        prompt_id, label = request.path_params["prompt_id"], _label(request)
        try:
            moved_from, moved_to = await self._store.rollback(prompt_id, label, actor=actor)
        except LookupError:
            raise NotFoundError(
                f"Label `{label}` of prompt `{prompt_id}` has no earlier version to return to.",
                param="label",
                code="prompt_label_not_found",
            ) from None
        self._library.invalidate()
        return _label_moved(prompt_id, label, moved_to, moved_from)

    async def history(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        prompt_id = request.path_params["prompt_id"]
        label = request.query_params.get("label") or None
        if not await self._store.exists(prompt_id):
            raise _missing(prompt_id)
        events = await self._store.history(prompt_id, label)
        data = [
            {
                "label": e.label,
                "version": e.version,
                "previous_version": e.previous_version,
                "at": e.at,
                "actor": e.actor,
            }
            for e in events
        ]
        return json_response({"object": "list", "data": data})

    async def render(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        prompt_id = request.path_params["prompt_id"]
        preview = validate(_Preview, await self._body(request))
        reference = validate(
            PromptReference,
            {"id": prompt_id, **preview.model_dump(exclude_none=True)},
        )
        compiled, label = await self._library.resolve(reference)
        messages = compiled.render(reference.variables)
        return json_response(
            {
                "object": "prompt.rendering",
                "id": prompt_id,
                "version": compiled.version,
                "label": label,
                "messages": messages,
                "parameters": compiled.definition.parameters,
            }
        )
