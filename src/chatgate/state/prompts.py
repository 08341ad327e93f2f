"""Prompt templates in the store: immutable versions, labels moved by compare-and-swap, and each
label's history (what a rollback returns to).

Every change bumps the ``prompts`` state version in its own transaction, so replicas that cache
label lookups drop them by polling one row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.state.audit import record_audit
from chatgate.state.db import Database
from chatgate.state.tables import (
    PromptLabelEventRow,
    PromptLabelRow,
    PromptVersionRow,
    StateVersionRow,
)

__all__ = ["LabelConflict", "LabelEvent", "PromptStore", "PromptSummary", "StoredVersion"]

LATEST = "latest"
"""The label every push moves to the version it stores (or finds)."""


class LabelConflict(Exception):
    """A compare-and-swap on a label lost: the label points elsewhere now."""

    def __init__(self, current: int | None):
        super().__init__(f"the label points to version {current}")
        self.current = current


@dataclass(frozen=True, slots=True)
class StoredVersion:
    prompt_id: str
    version: int
    definition: dict[str, Any]
    content_hash: str
    created_at: float
    created_by: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptSummary:
    prompt_id: str
    versions: int
    latest_at: float
    labels: dict[str, int]


@dataclass(frozen=True, slots=True)
class LabelEvent:
    label: str
    version: int
    previous_version: int | None
    at: float
    actor: str


async def _bump(session: AsyncSession) -> None:
    await session.execute(
        update(StateVersionRow)
        .where(StateVersionRow.name == "prompts")
        .values(version=StateVersionRow.version + 1)
    )


class PromptStore:
    def __init__(self, db: Database):
        self._db = db

    async def push(
        self, prompt_id: str, definition: dict[str, Any], content_hash: str, *, actor: str
    ) -> tuple[StoredVersion, bool]:
        """Store a new version (numbered after the newest), or find the version with the same
        content; ``latest`` moves to it. Returns the version and whether it is new."""
        for _attempt in range(5):  # two pushes racing for the same number: the loser retries
            try:
                return await self._push(prompt_id, definition, content_hash, actor)
            except IntegrityError:
                continue
        raise RuntimeError("could not number a new prompt version")  # pragma: no cover

    async def _push(
        self, prompt_id: str, definition: dict[str, Any], content_hash: str, actor: str
    ) -> tuple[StoredVersion, bool]:
        async with self._db.session() as session:
            same = await session.scalar(
                select(PromptVersionRow)
                .where(PromptVersionRow.prompt_id == prompt_id)
                .where(PromptVersionRow.content_hash == content_hash)
                .order_by(PromptVersionRow.version.desc())
                .limit(1)
            )
            created = same is None
            if same is None:
                newest = await session.scalar(
                    select(func.max(PromptVersionRow.version)).where(
                        PromptVersionRow.prompt_id == prompt_id
                    )
                )
                same = PromptVersionRow(
                    prompt_id=prompt_id,
                    version=(newest or 0) + 1,
                    definition=definition,
                    content_hash=content_hash,
                    created_at=time.time(),
                    created_by=actor,
                )
                session.add(same)
                await session.flush()
                await record_audit(
                    session, actor, "prompt.push", prompt_id, {"version": same.version}
                )
            await self._move(session, prompt_id, LATEST, same.version, expected=None, actor=actor)
            await _bump(session)
            return _stored(same), created

    async def set_label(
        self,
        prompt_id: str,
        label: str,
        version: int,
        *,
        expected: int | None = None,
        actor: str,
    ) -> int | None:
        """Point ``label`` at ``version``; with ``expected``, only if it points there now
        (``0``: only if it does not exist). Returns the version it pointed to before.
        Raises ``LookupError`` for an unknown version, ``LabelConflict`` on a lost swap."""
        try:
            return await self._set_label(prompt_id, label, version, expected, actor)
        except IntegrityError:  # another replica created the label first
            raise LabelConflict(await self.label(prompt_id, label)) from None

    async def _set_label(
        self, prompt_id: str, label: str, version: int, expected: int | None, actor: str
    ) -> int | None:
        async with self._db.session() as session:
            if await session.get(PromptVersionRow, (prompt_id, version)) is None:
                raise LookupError(version)
            previous = await self._move(
                session, prompt_id, label, version, expected=expected, actor=actor
            )
            await record_audit(
                session,
                actor,
                "prompt.label",
                prompt_id,
                {"label": label, "version": version, "previous_version": previous},
            )
            await _bump(session)
            return previous

    async def rollback(self, prompt_id: str, label: str, *, actor: str) -> tuple[int, int]:
        """Move ``label`` back to where it pointed before its last move; (from, to).
        Raises ``LookupError`` when the label has no earlier version."""
        async with self._db.session() as session:
            current = await session.get(PromptLabelRow, (prompt_id, label))
            last = await session.scalar(
                select(PromptLabelEventRow)
                .where(PromptLabelEventRow.prompt_id == prompt_id)
                .where(PromptLabelEventRow.label == label)
                .order_by(PromptLabelEventRow.id.desc())
                .limit(1)
            )
            if current is None or last is None or last.previous_version is None:
                raise LookupError(label)
            target, moved_from = last.previous_version, current.version
            await self._move(session, prompt_id, label, target, expected=moved_from, actor=actor)
            await record_audit(
                session,
                actor,
                "prompt.rollback",
                prompt_id,
                {"label": label, "from": moved_from, "to": target},
            )
            await _bump(session)
            return moved_from, target

    async def _move(
        self,
        session: AsyncSession,
        prompt_id: str,
        label: str,
        version: int,
        *,
        expected: int | None,
        actor: str,
    ) -> int | None:
        row = await session.get(PromptLabelRow, (prompt_id, label), with_for_update=True)
        current = None if row is None else row.version
        if expected is not None and (current or 0) != expected:
            raise LabelConflict(current)
        if current == version:
            return current
        now = time.time()
        if row is None:
            row = PromptLabelRow(prompt_id=prompt_id, label=label, version=version, updated_at=now)
            session.add(row)
        else:
            moved = await session.execute(
                update(PromptLabelRow)
                .where(PromptLabelRow.prompt_id == prompt_id)
                .where(PromptLabelRow.label == label)
                .where(PromptLabelRow.version == current)
                .values(version=version, updated_at=now)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise LabelConflict(None)
        session.add(
            PromptLabelEventRow(
                prompt_id=prompt_id,
                label=label,
                version=version,
                previous_version=current,
                at=now,
                actor=actor,
            )
        )
        await session.flush()
        return current

    async def get(self, prompt_id: str, version: int) -> StoredVersion | None:
        async with self._db.session() as session:
            row = await session.get(PromptVersionRow, (prompt_id, version))
            if row is None:
                return None
            labels = await session.scalars(
                select(PromptLabelRow.label)
                .where(PromptLabelRow.prompt_id == prompt_id)
                .where(PromptLabelRow.version == version)
                .order_by(PromptLabelRow.label)
            )
            return _stored(row, tuple(labels))

    async def label(self, prompt_id: str, label: str) -> int | None:
        """The version ``label`` points to, if it exists."""
        async with self._db.session() as session:
            row = await session.get(PromptLabelRow, (prompt_id, label))
            return None if row is None else row.version

    async def exists(self, prompt_id: str) -> bool:
        async with self._db.session() as session:
            found = await session.scalar(
                select(PromptVersionRow.version)
                .where(PromptVersionRow.prompt_id == prompt_id)
                .limit(1)
            )
            return found is not None

    async def versions(self, prompt_id: str) -> list[StoredVersion]:
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(PromptVersionRow)
                    .where(PromptVersionRow.prompt_id == prompt_id)
                    .order_by(PromptVersionRow.version)
                )
            ).all()
            labels = await self._labels(session, prompt_id)
        by_version: dict[int, list[str]] = {}
        for name, version in sorted(labels.items()):
            by_version.setdefault(version, []).append(name)
        return [_stored(r, tuple(by_version.get(r.version, ()))) for r in rows]

    async def labels(self, prompt_id: str) -> dict[str, int]:
        async with self._db.session() as session:
            return await self._labels(session, prompt_id)

    @staticmethod
    async def _labels(session: AsyncSession, prompt_id: str) -> dict[str, int]:
        rows = await session.execute(
            select(PromptLabelRow.label, PromptLabelRow.version).where(
                PromptLabelRow.prompt_id == prompt_id
            )
        )
        return {row[0]: row[1] for row in rows}

    async def history(self, prompt_id: str, label: str | None = None) -> list[LabelEvent]:
        async with self._db.session() as session:
            query = (
                select(PromptLabelEventRow)
                .where(PromptLabelEventRow.prompt_id == prompt_id)
                .order_by(PromptLabelEventRow.id)
            )
            if label is not None:
                query = query.where(PromptLabelEventRow.label == label)
            rows = (await session.scalars(query)).all()
            return [LabelEvent(r.label, r.version, r.previous_version, r.at, r.actor) for r in rows]

    async def list_prompts(self) -> list[PromptSummary]:
        async with self._db.session() as session:
            rows = await session.execute(
                select(
                    PromptVersionRow.prompt_id,
                    func.count(PromptVersionRow.version),
                    func.max(PromptVersionRow.created_at),
                )
                .group_by(PromptVersionRow.prompt_id)
                .order_by(PromptVersionRow.prompt_id)
            )
            summaries = [(str(r[0]), int(r[1]), float(r[2])) for r in rows]
            labels = await session.execute(
                select(PromptLabelRow.prompt_id, PromptLabelRow.label, PromptLabelRow.version)
            )
            by_prompt: dict[str, dict[str, int]] = {}
            for prompt_id, label, version in labels:
                by_prompt.setdefault(prompt_id, {})[label] = version
        return [
            PromptSummary(pid, count, latest, by_prompt.get(pid, {}))
            for pid, count, latest in summaries
        ]

    async def version(self) -> int:
        """The ``prompts`` state version (bumped by every change)."""
        async with self._db.session() as session:
            row = await session.get(StateVersionRow, "prompts")
            return 0 if row is None else row.version


def _stored(row: PromptVersionRow, labels: tuple[str, ...] = ()) -> StoredVersion:
    return StoredVersion(
        row.prompt_id,
        row.version,
        dict(row.definition),
        row.content_hash,
        row.created_at,
        row.created_by,
        labels,
    )
