"""The batch runner: moves batches through their lifecycle and answers their lines.

validating -> in_progress -> finalizing -> completed, or failed (bad input), expired (past the
completion window: lines not done become ``batch_expired`` errors), cancelling -> cancelled.
Every transition is a compare-and-swap on the status, so any number of runners (servers and
``chatgate worker`` processes) can share the work; lines are leased (see ``state.batches``),
renewed while in flight, and committed exactly once. Output and error files are written when a
batch finalizes and belong to the batch's key and owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from chatgate.config import BatchesConfig, FilesConfig
from chatgate.gateway.auth import Principal
from chatgate.gateway.batch_input import check_input
from chatgate.gateway.batch_lines import LineAnswerer, Transient
from chatgate.state.batches import BatchStore, Claim, Settled
from chatgate.state.files import FileAccess, FileStore
from chatgate.state.keys import KeyStore
from chatgate.state.tables import BatchRow

__all__ = ["BatchRunner"]

log = logging.getLogger("chatgate.batches")

_GROUP_COMMIT_WINDOW = 0.005
"""Seconds a finished line waits for others to share its commit."""


def _expired_line(custom_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": f"batch_req_{secrets.token_hex(12)}",
            "custom_id": custom_id,
            "response": None,
            "error": {
                "code": "batch_expired",
                "message": "The batch expired before this request ran.",
            },
        }
    )


class BatchRunner:
    def __init__(
        self,
        *,
        store: BatchStore,
        files: FileStore,
        keys: KeyStore,
        answerer: LineAnswerer,
        config: BatchesConfig,
        files_config: FilesConfig,
    ):
        self._store, self._files, self._keys = store, files, keys
        self._answerer = answerer
        self._config, self._files_config = config, files_config
        self.worker_id = f"runner-{secrets.token_hex(6)}"
        self._in_flight: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pause_until = 0.0
        self._wake = asyncio.Event()
        self._nudged = True
        self._advanced_at = 0.0
        self._to_commit: list[tuple[Claim, Settled, asyncio.Future[bool]]] = []
        self._commit_wanted = asyncio.Event()
        self._batches: dict[str, BatchRow] = {}
        """The active batches as of the last lifecycle pass."""

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name="chatgate-batches"),
            asyncio.create_task(self._heartbeat(), name="chatgate-batch-leases"),
            asyncio.create_task(self._committer(), name="chatgate-batch-commits"),
        ]

    def nudge(self) -> None:
        """A batch was created or cancelled: look now rather than at the next poll."""
        self._nudged = True
        self._wake.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        in_flight = list(self._in_flight.items())
        for _, task in in_flight:
            task.cancel()
        await asyncio.gather(*self._tasks, *(t for _, t in in_flight), return_exceptions=True)
        for (batch_id, line), _ in in_flight:  # hand the lines back at once, not after the lease
            with contextlib.suppress(Exception):
                await self._store.release(self.worker_id, batch_id, line)

    # --- the loop --------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                claimed = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch runner step failed; retrying")
                claimed = 0
            if claimed:
                continue
            self._wake.clear()  # set again when a line finishes or a batch arrives
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.poll_interval):
                    await self._wake.wait()

    async def step(self) -> int:
        """One pass: advance batch lifecycles (when nudged, else once per poll interval), then
        take lines up to free capacity, in groups; returns how many lines it took."""
        now = time.monotonic()
        if self._nudged or now - self._advanced_at >= self._config.poll_interval:
            self._nudged, self._advanced_at = False, now
            self._batches = {b.id: b for b in await self._store.active()}
            for batch in list(self._batches.values()):
                await self._advance(batch)
        free = self._config.concurrency - len(self._in_flight)
        # claim in groups (a quarter of the capacity), not one line per finished line
        group = max(1, self._config.concurrency // 4) if self._in_flight else 1
        running = any(b.status == "in_progress" for b in self._batches.values())
        if free < group or now < self._pause_until or not running:
            return 0
        claims = await self._store.claim(self.worker_id, free, self._config.lease_seconds)
        for claim in claims:
            owner = self._batches.get(claim.batch_id) or await self._store.get(claim.batch_id)
            if owner is None:
                continue
            key = (claim.batch_id, claim.line)
            task = asyncio.create_task(self._line(owner, claim))
            self._in_flight[key] = task
            task.add_done_callback(self._forget(key))
        return len(claims)

    def _forget(self, key: tuple[str, int]) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(key, None)

        return done

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._config.lease_seconds / 3)
            with contextlib.suppress(Exception):
                await self._store.renew(
                    self.worker_id, list(self._in_flight), self._config.lease_seconds
                )

    # --- lines -----------------------------------------------------------------------------

    async def _principal(self, batch: BatchRow) -> Principal | None:
        if batch.key_id is None:
            return Principal("master")
        key = await self._keys.get(batch.key_id)
        if (
            key is None
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at < time.time())
        ):
            return None
        return Principal("key", key=key)

    async def _line(self, batch: BatchRow, claim: Claim) -> None:
        try:
            principal = await self._principal(batch)
            if principal is None:
                settled = Settled(
                    ok=False,
                    result=orjson.dumps(
                        {
                            "id": f"batch_req_{secrets.token_hex(12)}",
                            "custom_id": claim.custom_id,
                            "response": {
                                "status_code": 401,
                                "request_id": None,
                                "body": {
                                    "error": {
                                        "message": "The batch's key was revoked or expired.",
                                        "type": "authentication_error",
                                        "param": None,
                                        "code": "invalid_api_key",
                                    }
                                },
                            },
                            "error": None,
                        }
                    ),
                )
            else:
                settled = await self._answerer.answer(claim, batch.endpoint, principal)
        except Transient as transient:
            self._pause_until = time.monotonic() + transient.retry_after
            await self._retry_or_fail(claim, "rate_limited", str(transient))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("batch %s line %d failed", claim.batch_id, claim.line)
            await self._retry_or_fail(claim, "internal_error", repr(exc)[:300])
            return
        if not await self._commit(claim, settled):
            log.warning("batch %s line %d: lease lost, result dropped", claim.batch_id, claim.line)
        self._wake.set()

    async def _commit(self, claim: Claim, settled: Settled) -> bool:
        """Queue a line's result for the next group commit and wait for it (the line keeps its
        slot, and its lease is renewed, until its result is in the store)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._to_commit.append((claim, settled, done))
        self._commit_wanted.set()
        return await done

    async def _committer(self) -> None:
        """Commit queued results together: one transaction per few milliseconds of finished
        lines instead of one per line."""
        while True:
            await self._commit_wanted.wait()
            await asyncio.sleep(_GROUP_COMMIT_WINDOW)  # let a few more lines finish
            self._commit_wanted.clear()
            group, self._to_commit = self._to_commit, []
            try:
                recorded = await self._store.commit_many(
                    self.worker_id, [(c.batch_id, c.line, settled) for c, settled, _ in group]
                )
            except Exception as exc:
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, _, done), ok in zip(group, recorded, strict=True):
                if not done.done():
                    done.set_result(ok)

    async def _retry_or_fail(self, claim: Claim, code: str, message: str) -> None:
        if claim.attempts < self._config.max_attempts:
            await self._store.release(self.worker_id, claim.batch_id, claim.line)
            return
        result = orjson.dumps(
            {
                "id": f"batch_req_{secrets.token_hex(12)}",
                "custom_id": claim.custom_id,
                "response": None,
                "error": {"code": code, "message": message},
            }
        )
        await self._commit(claim, Settled(ok=False, result=result))

    # --- lifecycle -------------------------------------------------------------------------

    async def _advance(self, batch: BatchRow) -> None:
        if batch.status == "validating":
            await self._validate(batch)
        elif batch.status == "in_progress":
            if time.time() > batch.expires_at:
                await self._expire(batch)
                return
            remaining, _ = await self._store.unfinished(batch.id)
            if remaining == 0 and await self._store.move(batch.id, ("in_progress",), "finalizing"):
                await self._finalize(batch.id, "completed")
        elif batch.status == "cancelling":
            _, running = await self._store.unfinished(batch.id)
            if running == 0 and await self._store.move(batch.id, ("cancelling",), "finalizing"):
                await self._finalize(batch.id, "cancelled")
        elif batch.status == "finalizing":
            await self._take_over(batch)

    async def _take_over(self, batch: BatchRow) -> None:
        """A runner died while finalizing: after a lease, another takes over (one wins)."""
        stale = (batch.finalizing_at or 0) < time.time() - self._config.lease_seconds
        if stale and await self._store.take_over_finalizing(batch.id, batch.finalizing_at):
            target = "completed"
            if batch.cancelling_at is not None:
                target = "cancelled"
            elif time.time() > batch.expires_at:
                target = "expired"
            await self._finalize(batch.id, target)

    async def _validate(self, batch: BatchRow) -> None:
        access = FileAccess(batch.key_id, batch.owner, admin=batch.key_id is None)
        info = await self._files.get(batch.input_file_id, access)
        if info is None:
            errors = [
                {
                    "code": "file_not_found",
                    "message": "The input file is gone.",
                    "param": "input_file_id",
                    "line": None,
                }
            ]
        else:
            content = await self._files.read(info.id)
            # parsing up to 200 MB of JSON lines would stall the event loop: off it
            check = await asyncio.to_thread(
                check_input, content, batch.endpoint, self._config.max_lines
            )
            errors = check.errors
            if not errors:
                if await self._store.start(batch.id, check.lines, check.model):
                    log.info("batch %s: %d lines queued", batch.id, len(check.lines))
                    self._nudged = True  # its lines can be claimed now
                return
        await self._store.move(
            batch.id, ("validating",), "failed", errors={"object": "list", "data": errors}
        )

    async def _expire(self, batch: BatchRow) -> None:
        if await self._store.move(batch.id, ("in_progress",), "finalizing"):
            for task in [t for k, t in self._in_flight.items() if k[0] == batch.id]:
                task.cancel()
            await self._store.close_pending(batch.id, _expired_line)
            await self._finalize(batch.id, "expired")

    async def _finalize(self, batch_id: str, target: str) -> None:
        batch = await self._store.get(batch_id)
        if batch is None:
            return
        values: dict[str, Any] = {}
        for ok, column in ((True, "output_file_id"), (False, "error_file_id")):
            content = await self._store.results(batch_id, ok=ok)
            if content:
                info = await self._files.create(
                    content,
                    purpose="batch_output",
                    filename=f"{batch_id}_{'output' if ok else 'error'}.jsonl",
                    key_id=batch.key_id,
                    owner=batch.owner,
                    expires_at=time.time() + self._files_config.batch_expiry,
                )
                values[column] = info.id
        await self._store.move(batch_id, ("finalizing",), target, **values)
        log.info("batch %s %s", batch_id, target)
