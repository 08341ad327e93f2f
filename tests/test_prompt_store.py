"""The prompt store on both backends: numbering, idempotent pushes, labels by compare-and-swap
under contention, history and rollback."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from chatgate.state import Database
from chatgate.state.prompts import LabelConflict, PromptStore

pytestmark = pytest.mark.anyio


async def test_versions_labels_and_rollback(db: Database) -> None:
    store = PromptStore(db)
    name = f"p{secrets.token_hex(3)}"
    before = await store.version()
    one, new = await store.push(name, {"messages": []}, "h1", actor="t")
    assert (one.version, new) == (1, True)
    again, new = await store.push(name, {"messages": []}, "h1", actor="t")
    assert (again.version, new) == (1, False)
    two, _ = await store.push(name, {"messages": [1]}, "h2", actor="t")
    assert two.version == 2
    assert await store.labels(name) == {"latest": 2}
    assert await store.version() > before  # replicas see a change
    assert await store.set_label(name, "production", 1, expected=0, actor="t") is None
    with pytest.raises(LabelConflict):
        await store.set_label(name, "production", 2, expected=0, actor="t")
    with pytest.raises(LookupError):
        await store.set_label(name, "production", 3, actor="t")
    assert await store.set_label(name, "production", 2, expected=1, actor="t") == 1
    assert await store.rollback(name, "production", actor="t") == (2, 1)
    events = await store.history(name, "production")
    assert [(e.previous_version, e.version) for e in events] == [(None, 1), (1, 2), (2, 1)]
    assert [v.labels for v in await store.versions(name)] == [("production",), ("latest",)]


async def test_only_one_compare_and_swap_wins(db: Database) -> None:
    store = PromptStore(db)
    name = f"p{secrets.token_hex(3)}"
    for digest in ("a", "b", "c"):
        await store.push(name, {"messages": [digest]}, digest, actor="t")
    await store.set_label(name, "production", 1, actor="t")

    async def attempt(version: int) -> bool:
        try:
            await store.set_label(name, "production", version, expected=1, actor="t")
        except LabelConflict:
            return False
        return True

    results = await asyncio.gather(*(attempt(2 + i % 2) for i in range(8)), return_exceptions=True)
    assert results.count(True) == 1, results
    assert all(r is False for r in results if r is not True), results
