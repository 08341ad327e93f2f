"""Batches in the store, and the leases that make every line's result land exactly once.

A runner *claims* lines: pending ones, or running ones whose lease ran out (their runner died).
On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of runners
(``chatgate worker`` processes, servers) take disjoint lines. A result is *committed* with a
conditional update — only by the runner that still holds the line's lease, only while the line
is running — in the same transaction as the batch's counts, usage and cost. A runner killed
after calling the model but before committing loses nothing: the lease expires, another runner
answers the line again, and only one result (and one bill) is ever recorded.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, select, tuple_, update

from chatgate.state.db import Database
from chatgate.state.files import FileAccess
from chatgate.state.keyring import Keyring, Sealed
from chatgate.state.paging import page_after, page_order
from chatgate.state.tables import BatchItemRow, BatchRow

__all__ = ["ACTIVE", "BatchStore", "Claim", "Settled", "new_batch_id"]

ACTIVE = ("validating", "in_progress", "cancelling", "finalizing")
TERMINAL = ("completed", "failed", "expired", "cancelled")


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def _request_context(batch_id: str, line: int) -> bytes:
    return f"batch:{batch_id}:{line}:request".encode()


def _result_context(batch_id: str, line: int) -> bytes:
    return f"batch:{batch_id}:{line}:result".encode()


@dataclass(frozen=True, slots=True)
class Claim:
    batch_id: str
    line: int
    custom_id: str
    request: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class Settled:
    """What one line's answer used, added to its batch when the line commits."""

    ok: bool
    result: bytes
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0


class BatchStore:
    def __init__(self, db: Database, keyring: Keyring):
        self._db = db
        self._keyring = keyring

    # --- batches ---------------------------------------------------------------------------

    async def create(
        self,
        *,
        endpoint: str,
        input_file_id: str,
        completion_window: str,
        metadata: dict[str, Any] | None,
        key_id: str | None,
        owner: str | None,
        window_seconds: float,
    ) -> BatchRow:
        now = time.time()
        row = BatchRow(
            id=new_batch_id(),
            key_id=key_id,
            owner=owner,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            status="validating",
            batch_metadata=metadata,
            errors=None,
            created_at=now,
            expires_at=now + window_seconds,
            total=0,
            completed=0,
            failed=0,
            input_tokens=0,
            cached_tokens=0,
            output_tokens=0,
            reasoning_tokens=0,
            cost=0.0,
        )
        async with self._db.session() as session:
            session.add(row)
        return row

    async def get(self, batch_id: str, access: FileAccess | None = None) -> BatchRow | None:
        query = select(BatchRow).where(BatchRow.id == batch_id)
        condition = None if access is None else _visible(access)
        if condition is not None:
            query = query.where(condition)
        async with self._db.session() as session:
            row: BatchRow | None = await session.scalar(query)
            return row

    async def list_batches(
        self, access: FileAccess, *, after: str | None, limit: int
    ) -> tuple[list[BatchRow], bool]:
        query = select(BatchRow)
        condition = _visible(access)
        if condition is not None:
            query = query.where(condition)
        async with self._db.session() as session:
            if after is not None:
                cursor = await session.get(BatchRow, after)
                if cursor is not None:
                    pivot = (cursor.created_at, cursor.id)
                    query = page_after(
                        query, BatchRow.created_at, BatchRow.id, pivot, descending=True
                    )
            order = page_order(BatchRow.created_at, BatchRow.id, descending=True)
            rows = list((await session.scalars(query.order_by(*order).limit(limit + 1))).all())
        return rows[:limit], len(rows) > limit

    async def active(self) -> list[BatchRow]:
        async with self._db.session() as session:
            rows = await session.scalars(select(BatchRow).where(BatchRow.status.in_(ACTIVE)))
            return list(rows.all())

    async def move(
        self, batch_id: str, source: tuple[str, ...], target: str, **values: Any
    ) -> bool:
        """``status`` from one of ``source`` to ``target`` (with its timestamp), atomically."""
        stamp = {f"{target}_at": time.time()} if target != "validating" else {}
        async with self._db.session() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status.in_(source))
                .values(status=target, **stamp, **values)
            )
            return bool(moved.rowcount)  # type: ignore[attr-defined]

    async def take_over_finalizing(self, batch_id: str, seen_at: float | None) -> bool:
        """Claim a batch whose finalizing runner died (its ``finalizing_at`` is still the one
        seen): one runner wins."""
        async with self._db.session() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == "finalizing")
                .where(BatchRow.finalizing_at == seen_at)
                .values(finalizing_at=time.time())
            )
            return bool(moved.rowcount)  # type: ignore[attr-defined]

    async def start(
        self, batch_id: str, lines: list[tuple[int, str, bytes]], model: str | None
    ) -> bool:
        """Store every line and move the batch to ``in_progress``, in one transaction (a batch
        never exists half-loaded). Lines are sealed off the event loop and inserted as one
        executemany."""
        rows = await asyncio.to_thread(self._sealed_lines, batch_id, lines)
        async with self._db.session() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == "validating")
                .values(
                    status="in_progress", in_progress_at=time.time(), total=len(lines), model=model
                )
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                return False
            if rows:
                await session.execute(insert(BatchItemRow), rows)
        return True

    def _sealed_lines(
        self, batch_id: str, lines: list[tuple[int, str, bytes]]
    ) -> list[dict[str, Any]]:
        rows = []
        for line, custom_id, request in lines:
            sealed = self._keyring.seal(request, _request_context(batch_id, line))
            rows.append(
                {
                    "batch_id": batch_id,
                    "line": line,
                    "custom_id": custom_id,
                    "state": "pending",
                    "attempts": 0,
                    "key_id": sealed.key_id,
                    "nonce": sealed.nonce,
                    "request": sealed.ciphertext,
                }
            )
        return rows

    # --- lines -----------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease: float) -> list[Claim]:
        """Up to ``limit`` lines of running batches for ``owner``, leased for ``lease`` s."""
        now = time.time()
        async with self._db.session() as session:
            candidates = (
                select(BatchItemRow.batch_id, BatchItemRow.line)
                .join(BatchRow, BatchRow.id == BatchItemRow.batch_id)
                .where(BatchRow.status == "in_progress")
                .where(
                    or_(
                        BatchItemRow.state == "pending",
                        (BatchItemRow.state == "running") & (BatchItemRow.lease_until < now),
                    )
                )
                .order_by(BatchRow.created_at, BatchItemRow.batch_id, BatchItemRow.line)
                .limit(limit)
            )
            if not self._db.is_sqlite:
                candidates = candidates.with_for_update(skip_locked=True, of=BatchItemRow)
            keys = [tuple(k) for k in (await session.execute(candidates)).all()]
            if not keys:
                return []
            await session.execute(
                update(BatchItemRow)
                .where(tuple_(BatchItemRow.batch_id, BatchItemRow.line).in_(keys))
                .values(
                    state="running",
                    lease_owner=owner,
                    lease_until=now + lease,
                    attempts=BatchItemRow.attempts + 1,
                )
            )
            rows = await session.scalars(
                select(BatchItemRow).where(
                    tuple_(BatchItemRow.batch_id, BatchItemRow.line).in_(keys),
                    BatchItemRow.lease_owner == owner,
                )
            )
            return [
                Claim(
                    r.batch_id,
                    r.line,
                    r.custom_id,
                    self._keyring.open(
                        Sealed(r.key_id, r.nonce, r.request), _request_context(r.batch_id, r.line)
                    ),
                    r.attempts,
                )
                for r in rows.all()
            ]

    async def renew(self, owner: str, keys: list[tuple[str, int]], lease: float) -> None:
        if not keys:
            return
        async with self._db.session() as session:
            await session.execute(
                update(BatchItemRow)
                .where(tuple_(BatchItemRow.batch_id, BatchItemRow.line).in_(keys))
                .where(BatchItemRow.lease_owner == owner, BatchItemRow.state == "running")
                .values(lease_until=time.time() + lease)
            )

    async def release(self, owner: str, batch_id: str, line: int) -> None:
        """Give a line back (a transient failure): another attempt will take it."""
        async with self._db.session() as session:
            await session.execute(
                update(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id, BatchItemRow.line == line)
                .where(BatchItemRow.lease_owner == owner, BatchItemRow.state == "running")
                .values(state="pending", lease_owner=None, lease_until=None)
            )

    async def commit(self, owner: str, batch_id: str, line: int, settled: Settled) -> bool:
        """Record one line's result (see ``commit_many``)."""
        return (await self.commit_many(owner, [(batch_id, line, settled)]))[0]

    async def commit_many(self, owner: str, results: list[tuple[str, int, Settled]]) -> list[bool]:
        """Record lines' results once each: a line is recorded only while ``owner`` holds its
        lease, and its batch's counts, usage and cost move in the same transaction. Several
        lines share one transaction (a group commit). False for a line whose lease was lost
        (another runner has or will have it): nothing of it was recorded."""
        sealed = [
            self._keyring.seal(settled.result, _result_context(batch_id, line))
            for batch_id, line, settled in results
        ]
        recorded: list[bool] = []
        totals: dict[str, dict[Any, Any]] = {}
        async with self._db.session() as session:
            for (batch_id, line, settled), seal in zip(results, sealed, strict=True):
                done = await session.execute(
                    update(BatchItemRow)
                    .where(BatchItemRow.batch_id == batch_id, BatchItemRow.line == line)
                    .where(BatchItemRow.lease_owner == owner, BatchItemRow.state == "running")
                    .values(
                        state="done",
                        ok=settled.ok,
                        result_key_id=seal.key_id,
                        result_nonce=seal.nonce,
                        result=seal.ciphertext,
                        lease_until=None,
                    )
                    .execution_options(synchronize_session=False)
                )
                recorded.append(bool(done.rowcount))  # type: ignore[attr-defined]
                if recorded[-1]:
                    _add(totals.setdefault(batch_id, {}), settled)
            for batch_id, added in totals.items():
                await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == batch_id)
                    .values({column: column + amount for column, amount in added.items()})
                    .execution_options(synchronize_session=False)
                )
        return recorded

    async def close_pending(self, batch_id: str, result: Any) -> int:
        """Settle every line not yet done with ``result(custom_id) -> bytes`` as a failure
        (a batch that expired); returns how many."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(BatchItemRow).where(
                    BatchItemRow.batch_id == batch_id, BatchItemRow.state != "done"
                )
            )
            closed = 0
            for row in rows.all():
                sealed = self._keyring.seal(
                    result(row.custom_id), _result_context(batch_id, row.line)
                )
                row.state, row.ok = "done", False
                row.result_key_id, row.result_nonce, row.result = (
                    sealed.key_id,
                    sealed.nonce,
                    sealed.ciphertext,
                )
                closed += 1
            if closed:
                await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == batch_id)
                    .values(failed=BatchRow.failed + closed)
                )
            return closed

    async def unfinished(self, batch_id: str) -> tuple[int, int]:
        """(lines not yet done, of them running now)."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(BatchItemRow.state, func.count())
                .where(BatchItemRow.batch_id == batch_id, BatchItemRow.state != "done")
                .group_by(BatchItemRow.state)
            )
            counts = {state: int(n) for state, n in rows.all()}
        return sum(counts.values()), counts.get("running", 0)

    async def results(self, batch_id: str, *, ok: bool) -> bytes:
        """The committed result lines (successes or failures), in input order, as JSONL."""
        out = bytearray()
        async with self._db.session() as session:
            rows = await session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id, BatchItemRow.state == "done")
                .where(BatchItemRow.ok.is_(ok))
                .order_by(BatchItemRow.line)
            )
            for row in rows.all():
                assert row.result_key_id is not None and row.result is not None
                sealed = Sealed(row.result_key_id, row.result_nonce or b"", row.result)
                out += self._keyring.open(sealed, _result_context(batch_id, row.line)) + b"\n"
        return bytes(out)


def _add(totals: dict[Any, Any], settled: Settled) -> None:
    """Fold one line into its batch's pending increments."""
    counter = BatchRow.completed if settled.ok else BatchRow.failed
    for column, amount in (
        (counter, 1),
        (BatchRow.input_tokens, settled.input_tokens),
        (BatchRow.cached_tokens, settled.cached_tokens),
        (BatchRow.output_tokens, settled.output_tokens),
        (BatchRow.reasoning_tokens, settled.reasoning_tokens),
        (BatchRow.cost, settled.cost),
    ):
        totals[column] = totals.get(column, 0) + amount


def _visible(access: FileAccess) -> Any:
    return access.condition(BatchRow.key_id, BatchRow.owner)
