"""The request log: one row per request, written in batches, and the usage reports over it."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any, Literal

from sqlalchemy import Float, String, cast, delete, func, insert, select
from sqlalchemy.engine import make_url

from chatgate.state.db import Database
from chatgate.state.tables import RequestLogRow

__all__ = ["GROUPS", "RECORD_FIELDS", "RequestLogStore", "RequestRecord", "UsageRow", "WindowStats"]

GROUPS = ("key", "owner", "model", "day", "prompt", "endpoint")


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    at: float
    key_id: str | None
    owner: str | None
    model: str
    model_served: str | None
    provider: str | None
    status: int
    error_type: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost: float
    request_bytes: int
    response_bytes: int
    queue_ms: float
    ttft_ms: float | None
    upstream_ms: float | None
    total_ms: float
    overhead_ms: float | None
    cache: str | None
    attempts: int
    stream: bool
    priority: str | None
    prompt_id: str | None = None
    prompt_version: int | None = None
    prompt_label: str | None = None
    guard_flags: str | None = None
    experiment: str | None = None
    variant: str | None = None
    endpoint: str = "/v1/chat/completions"
    client_request_id: str | None = None
    usage_source: str | None = None
    """``gateway`` when chatgate counted the tokens itself (the upstream reported none)."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_avg_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))
"""The record's fields in column order."""
_as_row = attrgetter(*RECORD_FIELDS)


class _SQLiteAppender:
    """Appends rows to an SQLite file over a plain ``sqlite3`` connection on a thread of its own.

    The request log's writes are the one steady write load; through the async engine each batch
    also cost ~0.4 ms of SQLAlchemy and aiosqlite hand-offs on the event loop's thread. Here the
    loop only hands the rows over; binding, stepping and the commit happen on this thread
    (sqlite3 releases the GIL while SQLite works). SQLite's own locking (WAL, busy timeout)
    orders these writes with the engine's."""

    def __init__(self, path: str):
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chatgate-request-log")
        self._connection: sqlite3.Connection | None = None

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(self._path, timeout=5.0, check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode=WAL")
        with self._connection:  # one transaction, committed (or rolled back) here
            self._connection.executemany(sql, rows)

    async def append(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, sql, rows)

    def close(self) -> None:
        self._executor.submit(self._close).result()
        self._executor.shutdown()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class RequestLogStore:
    def __init__(self, db: Database):
        self._db = db
        path = make_url(db.url).database if db.is_sqlite else None
        self._appender = _SQLiteAppender(path) if path and path != ":memory:" else None
        # The INSERT compiled once for this database's dialect; rows go to the driver's own
        # executemany as tuples. (SQLAlchemy's per-row parameter handling cost ~25 us a row,
        # paid on the event loop's thread while requests wait; this is a few.)
        compiled = insert(RequestLogRow).compile(
            dialect=db.engine.dialect, column_keys=list(RECORD_FIELDS)
        )
        self._sql = str(compiled)
        order = compiled.positiontup or []
        assert order == list(RECORD_FIELDS), "columns out of the record's order"

    async def insert(self, records: Sequence[RequestRecord]) -> None:
        if not records:
            return
        rows = [_as_row(r) for r in records]
        if self._appender is not None:
            await self._appender.append(self._sql, rows)
            return
        async with self._db.session() as session:
            connection = await session.connection()
            await connection.exec_driver_sql(self._sql, rows)

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()

    async def window(self, start: float, end: float, model: str | None = None) -> WindowStats:
        """Requests, error rate, p95 latency, tokens and cost per request over [start, end)."""
        where = [RequestLogRow.at >= start, RequestLogRow.at < end]
        if model is not None:
            where.append(RequestLogRow.model == model)
        async with self._db.session() as session:
            totals = (
                await session.execute(
                    select(
                        func.count(),
                        func.sum((RequestLogRow.status >= 500).cast(Float)),
                        func.coalesce(
                            func.sum(RequestLogRow.prompt_tokens + RequestLogRow.completion_tokens),
                            0,
                        ),
                        func.coalesce(func.sum(RequestLogRow.cost), 0.0),
                    ).where(*where)
                )
            ).one()
            count = int(totals[0])
            p95 = 0.0
            if count:
                offset = min(count - 1, int(count * 0.95))
                p95 = float(
                    (
                        await session.execute(
                            select(RequestLogRow.total_ms)
                            .where(*where)
                            .order_by(RequestLogRow.total_ms)
                            .offset(offset)
                            .limit(1)
                        )
                    ).scalar_one()
                )
        share = max(count, 1)
        return WindowStats(
            requests=count,
            error_rate=float(totals[1] or 0) / share,
            p95_ms=p95,
            tokens_per_request=float(totals[2]) / share,
            cost_per_request=float(totals[3]) / share,
        )

    async def caller_of(self, request_id: str) -> tuple[bool, str | None]:
        """Whether ``request_id`` is in the log, and the key that made it (None: the master key
        or open mode)."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(RequestLogRow.key_id).where(RequestLogRow.request_id == request_id)
                )
            ).first()
        return (False, None) if row is None else (True, row[0])

    async def models(self, start: float, end: float) -> list[str]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(RequestLogRow.model)
                .where(RequestLogRow.at >= start, RequestLogRow.at < end)
                .distinct()
            )
            return sorted(rows.all())

    async def rows_between(
        self, start: float, end: float, limit: int = 100_000
    ) -> list[tuple[Any, ...]]:
        """The newest ``limit`` records in [start, end): time, latency, status, tokens, cost,
        cache result, model, key and endpoint, oldest first."""
        query = (
            select(
                RequestLogRow.at,
                RequestLogRow.total_ms,
                RequestLogRow.status,
                RequestLogRow.prompt_tokens,
                RequestLogRow.completion_tokens,
                RequestLogRow.cost,
                RequestLogRow.cache,
                RequestLogRow.model,
                RequestLogRow.key_id,
                RequestLogRow.endpoint,
            )
            .where(RequestLogRow.at >= start, RequestLogRow.at < end)
            .order_by(RequestLogRow.at.desc())
            .limit(limit)
        )
        async with self._db.session() as session:
            rows = [tuple(row) for row in (await session.execute(query)).all()]
        rows.reverse()
        return rows

    async def purge(self, older_than: float) -> int:
        async with self._db.session() as session:
            result = await session.execute(
                delete(RequestLogRow).where(RequestLogRow.at < older_than)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def usage(
        self,
        group_by: Literal["key", "owner", "model", "day", "prompt", "endpoint"],
        start: float | None = None,
        end: float | None = None,
    ) -> list[UsageRow]:
        column: Any
        if group_by == "day":
            column = func.floor(RequestLogRow.at / 86400)
        elif group_by == "prompt":  # id@version of the template the request was rendered from
            column = RequestLogRow.prompt_id.concat("@").concat(
                cast(RequestLogRow.prompt_version, String)
            )
        else:
            column = {
                "key": RequestLogRow.key_id,
                "owner": RequestLogRow.owner,
                "model": RequestLogRow.model,
                "endpoint": RequestLogRow.endpoint,
            }[group_by]
        query = select(
            column.label("group"),
            func.count().label("requests"),
            func.sum((RequestLogRow.status >= 400).cast(Float)).label("errors"),
            func.coalesce(func.sum(RequestLogRow.prompt_tokens), 0),
            func.coalesce(func.sum(RequestLogRow.completion_tokens), 0),
            func.coalesce(func.sum(RequestLogRow.cost), 0.0),
            func.coalesce(func.avg(RequestLogRow.total_ms), 0.0),
        ).group_by(column)
        if start is not None:
            query = query.where(RequestLogRow.at >= start)
        if end is not None:
            query = query.where(RequestLogRow.at < end)
        async with self._db.session() as session:
            rows = (await session.execute(query.order_by(column))).all()
        out = []
        for group, requests, errors, prompt, completion, cost, latency in rows:
            if group_by == "day" and group is not None:
                label = datetime.datetime.fromtimestamp(
                    float(group) * 86400, datetime.UTC
                ).strftime("%Y-%m-%d")
            else:
                label = "-" if group is None else str(group)
            out.append(
                UsageRow(
                    label,
                    int(requests),
                    int(errors or 0),
                    int(prompt),
                    int(completion),
                    float(cost),
                    float(latency),
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int
    error_rate: float
    p95_ms: float
    tokens_per_request: float
    cost_per_request: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
