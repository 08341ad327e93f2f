"""Vector stores in the store: the stores, their files (ingested under leases, so a replica that
dies mid-file leaves it to another), file batches, and the chunk index.

Chunks hold their text (the keyword index needs it: an FTS5 table on SQLite, a stored
``tsvector`` column with a GIN index on PostgreSQL) and their float32 vector. The uploaded file
itself stays sealed in the files table. Every change to a store's chunks or file attributes
moves its ``version``, which search caches compare against.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, text, update

from chatgate.state.db import Database
from chatgate.state.files import FileAccess
from chatgate.state.paging import page_after, page_order
from chatgate.state.tables import (
    VectorStoreChunkRow,
    VectorStoreFileBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
)

__all__ = [
    "FILE_STATUSES",
    "ChunkRecord",
    "StoredChunk",
    "VectorStoreFileInfo",
    "VectorStoreInfo",
    "VectorStoreStore",
    "new_id",
    "vector_text",
]

log = logging.getLogger("chatgate.state")

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


@dataclass(frozen=True, slots=True)
class VectorStoreInfo:
    id: str
    key_id: str | None
    owner: str | None
    name: str | None
    description: str | None
    metadata: dict[str, Any] | None
    expires_after: dict[str, Any] | None
    expires_at: float | None
    last_active_at: float
    created_at: float
    embedding_model: str
    version: int
    counts: dict[str, int]
    usage_bytes: int

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()


@dataclass(frozen=True, slots=True)
class VectorStoreFileInfo:
    vector_store_id: str
    file_id: str
    batch_id: str | None
    filename: str
    status: str
    usage_bytes: int
    created_at: float
    last_error: dict[str, Any] | None
    chunking: dict[str, Any]
    attributes: dict[str, Any] | None
    attempts: int

    @classmethod
    def from_row(cls, row: VectorStoreFileRow) -> VectorStoreFileInfo:
        return cls(
            row.vector_store_id,
            row.file_id,
            row.batch_id,
            row.filename,
            row.status,
            row.usage_bytes,
            row.created_at,
            row.last_error,
            row.chunking,
            row.attributes,
            row.attempts,
        )


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk ready to store: its place in the source text and its vector's bytes."""

    seq: int
    start: int
    end: int
    tokens: int
    text: str
    embedding: bytes


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    vector_store_id: str
    file_id: str
    seq: int
    start: int
    end: int
    text: str


def _owned(access: FileAccess) -> ColumnElement[bool] | None:
    return access.condition(VectorStoreRow.key_id, VectorStoreRow.owner)


def _held(store_id: str, file_id: str, owner: str) -> tuple[ColumnElement[bool], ...]:
    """A file still being ingested under ``owner``'s lease."""
    return (
        VectorStoreFileRow.vector_store_id == store_id,
        VectorStoreFileRow.file_id == file_id,
        VectorStoreFileRow.lease_owner == owner,
        VectorStoreFileRow.status == "in_progress",
    )


def _expiry(expires_after: dict[str, Any] | None, last_active: float) -> float | None:
    if not expires_after:
        return None
    return last_active + int(expires_after["days"]) * 86400


_WORD = re.compile(r"\w+", re.UNICODE)

# English function words: matched by nearly every chunk, they would fill a keyword ranking with
# noise (PostgreSQL's `english` configuration drops the same kind of words itself).
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()  # noqa: SIM905 (a word list reads better as text)
)


def keywords(query: str) -> list[str]:
    """The words of ``query`` worth matching: lower-cased, deduplicated, without stopwords (all
    of them if that would leave none)."""
    words = list(dict.fromkeys(_WORD.findall(query.lower())))
    kept = [w for w in words if w not in _STOPWORDS]
    return kept or words


def fts5_query(query: str) -> str | None:
    """The keywords of ``query`` as an FTS5 OR of quoted terms (no FTS5 syntax gets through)."""
    words = keywords(query)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


_PGVECTOR_DDL = (
    "CREATE TABLE IF NOT EXISTS vector_store_chunk_vectors ("
    " chunk_id integer PRIMARY KEY REFERENCES vector_store_chunks(id) ON DELETE CASCADE,"
    " vector_store_id varchar(40) NOT NULL, file_id varchar(40) NOT NULL,"
    " dimensions integer NOT NULL, embedding vector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_vector_store_chunk_vectors_store"
    " ON vector_store_chunk_vectors (vector_store_id, dimensions)",
)


def vector_text(blob: bytes) -> str:
    """pgvector's text form of a little-endian float32 vector."""
    values = memoryview(blob).cast("f")
    return "[" + ",".join(f"{x:.7g}" for x in values) + "]"


class VectorStoreStore:
    def __init__(self, db: Database):
        self._db = db
        self.db = db
        self.pgvector = False
        """Vectors are also written to pgvector's table (see ``enable_pgvector``)."""
        self._indexed: set[int] = set()

    async def enable_pgvector(self) -> bool:
        """On PostgreSQL with the pgvector extension available: keep every chunk's vector in a
        ``vector`` column too (created here, outside the migrations, because the extension is
        optional), copy over vectors stored before, and index them. False where it cannot."""
        if self._db.is_sqlite:
            return False
        try:
            async with self._db.session() as session:
                await session.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except Exception as exc:
            log.info("pgvector is not available (%s); vectors are searched in memory", exc)
            return False
        async with self._db.session() as session:
            for statement in _PGVECTOR_DDL:
                await session.execute(text(statement))
        self.pgvector = True
        await self._backfill()
        async with self._db.session() as session:
            widths = await session.scalars(
                text("SELECT DISTINCT dimensions FROM vector_store_chunk_vectors")
            )
            known = [int(w) for w in widths]
        for width in known:
            await self._index(width)
        return True

    async def _index(self, width: int) -> None:
        if width in self._indexed:
            return
        try:
            async with self._db.session() as session:
                await session.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS ix_vector_store_chunk_vectors_hnsw_{width}"
                        f" ON vector_store_chunk_vectors USING hnsw"
                        f" ((embedding::vector({width})) vector_cosine_ops)"
                        f" WHERE dimensions = {width}"
                    )
                )
        except Exception as exc:  # another replica creating it at the same moment
            log.info("HNSW index for width %s not created here: %s", width, exc)
        self._indexed.add(width)

    async def _backfill(self) -> None:
        while True:
            async with self._db.session() as session:
                rows = (
                    await session.execute(
                        text(
                            "SELECT c.id, c.vector_store_id, c.file_id, c.embedding"
                            " FROM vector_store_chunks c LEFT JOIN vector_store_chunk_vectors v"
                            " ON v.chunk_id = c.id WHERE v.chunk_id IS NULL LIMIT 1000"
                        )
                    )
                ).all()
                if not rows:
                    return
                await self._write_vectors(session, [(r[0], r[1], r[2], r[3]) for r in rows])

    async def _write_vectors(
        self, session: Any, rows: Sequence[tuple[int, str, str, bytes]]
    ) -> None:
        await session.execute(
            text(
                "INSERT INTO vector_store_chunk_vectors"
                " (chunk_id, vector_store_id, file_id, dimensions, embedding)"
                " VALUES (:id, :store, :file, :dims, CAST(:vec AS vector))"
            ),
            [
                {
                    "id": chunk_id,
                    "store": store_id,
                    "file": file_id,
                    "dims": len(blob) // 4,
                    "vec": vector_text(blob),
                }
                for chunk_id, store_id, file_id, blob in rows
            ],
        )

    # -- stores ---------------------------------------------------------------------------

    async def create(
        self,
        *,
        key_id: str | None,
        owner: str | None,
        name: str | None,
        description: str | None,
        metadata: dict[str, Any] | None,
        expires_after: dict[str, Any] | None,
        embedding_model: str,
    ) -> str:
        now = time.time()
        store_id = new_id("vs_")
        async with self._db.session() as session:
            session.add(
                VectorStoreRow(
                    id=store_id,
                    key_id=key_id,
                    owner=owner,
                    name=name,
                    description=description,
                    store_metadata=metadata,
                    expires_after=expires_after,
                    expires_at=_expiry(expires_after, now),
                    last_active_at=now,
                    created_at=now,
                    embedding_model=embedding_model,
                    version=0,
                )
            )
        return store_id

    async def _infos(self, rows: Sequence[VectorStoreRow]) -> list[VectorStoreInfo]:
        """The stores of ``rows`` with their file counts and usage: one grouped query for all
        of them (not one per store)."""
        if not rows:
            return []
        counts = {row.id: dict.fromkeys(FILE_STATUSES, 0) for row in rows}
        usage = dict.fromkeys(counts, 0)
        async with self._db.session() as session:
            grouped = await session.execute(
                select(
                    VectorStoreFileRow.vector_store_id,
                    VectorStoreFileRow.status,
                    func.count(),
                    func.coalesce(func.sum(VectorStoreFileRow.usage_bytes), 0),
                )
                .where(VectorStoreFileRow.vector_store_id.in_(list(counts)))
                .group_by(VectorStoreFileRow.vector_store_id, VectorStoreFileRow.status)
            )
            for store_id, status, count, used in grouped:
                counts[store_id][status] = int(count)
                usage[store_id] += int(used)
        for store_counts in counts.values():
            store_counts["total"] = sum(store_counts[s] for s in FILE_STATUSES)
        return [
            VectorStoreInfo(
                row.id,
                row.key_id,
                row.owner,
                row.name,
                row.description,
                row.store_metadata,
                row.expires_after,
                row.expires_at,
                row.last_active_at,
                row.created_at,
                row.embedding_model,
                row.version,
                counts[row.id],
                usage[row.id],
            )
            for row in rows
        ]

    async def get(self, store_id: str, access: FileAccess) -> VectorStoreInfo | None:
        query = select(VectorStoreRow).where(VectorStoreRow.id == store_id)
        condition = _owned(access)
        if condition is not None:
            query = query.where(condition)
        async with self._db.session() as session:
            row = await session.scalar(query)
        return None if row is None else (await self._infos([row]))[0]

    async def list_stores(
        self, access: FileAccess, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[VectorStoreInfo], bool]:
        query = select(VectorStoreRow)
        condition = _owned(access)
        if condition is not None:
            query = query.where(condition)
        async with self._db.session() as session:
            if after is not None:
                cursor = await session.get(VectorStoreRow, after)
                if cursor is not None:
                    pivot = (cursor.created_at, cursor.id)
                    query = page_after(
                        query,
                        VectorStoreRow.created_at,
                        VectorStoreRow.id,
                        pivot,
                        descending=descending,
                    )
            order = page_order(VectorStoreRow.created_at, VectorStoreRow.id, descending=descending)
            rows = (await session.scalars(query.order_by(*order).limit(limit + 1))).all()
        return await self._infos(rows[:limit]), len(rows) > limit

    async def update(self, store_id: str, changes: dict[str, Any]) -> None:
        """Apply ``name``, ``metadata`` and ``expires_after`` changes (keys present = set)."""
        async with self._db.session() as session:
            row = await session.get(VectorStoreRow, store_id)
            if row is None:
                return
            if "name" in changes:
                row.name = changes["name"]
            if "metadata" in changes:
                row.store_metadata = changes["metadata"]
            if "expires_after" in changes:
                row.expires_after = changes["expires_after"]
                row.expires_at = _expiry(row.expires_after, row.last_active_at)

    async def touch(self, store_ids: Sequence[str]) -> None:
        """Mark stores active now (a search, or a chat grounded on them); moves their expiry."""
        now = time.time()
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(VectorStoreRow).where(VectorStoreRow.id.in_(store_ids))
                )
            ).all()
            for row in rows:
                row.last_active_at = now
                row.expires_at = _expiry(row.expires_after, now)

    async def delete(self, store_id: str) -> None:
        async with self._db.session() as session:
            for table in (VectorStoreChunkRow, VectorStoreFileRow, VectorStoreFileBatchRow):
                await session.execute(delete(table).where(table.vector_store_id == store_id))
            await session.execute(delete(VectorStoreRow).where(VectorStoreRow.id == store_id))

    async def embedding_model(self, store_id: str) -> str:
        return (await self.owner_of(store_id))[2]

    async def owner_of(self, store_id: str) -> tuple[str | None, str | None, str]:
        """The store's key id, owner and embedding model (``LookupError`` if it is gone)."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(
                        VectorStoreRow.key_id, VectorStoreRow.owner, VectorStoreRow.embedding_model
                    ).where(VectorStoreRow.id == store_id)
                )
            ).first()
        if row is None:
            raise LookupError(store_id)
        return row[0], row[1], str(row[2])

    async def versions(self, store_ids: Sequence[str]) -> dict[str, int]:
        async with self._db.session() as session:
            rows = await session.execute(
                select(VectorStoreRow.id, VectorStoreRow.version).where(
                    VectorStoreRow.id.in_(store_ids)
                )
            )
            return {store_id: int(version) for store_id, version in rows}

    # -- files ----------------------------------------------------------------------------

    async def add_files(
        self,
        store_id: str,
        entries: Sequence[tuple[str, str, dict[str, Any], dict[str, Any] | None]],
        *,
        batch_id: str | None = None,
    ) -> None:
        """Attach files ``(file_id, filename, chunking, attributes)`` as ``in_progress``; a file
        attached again starts over (its old chunks go)."""
        now = time.time()
        ids = [entry[0] for entry in entries]
        async with self._db.session() as session:
            if batch_id is not None:
                session.add(
                    VectorStoreFileBatchRow(
                        id=batch_id, vector_store_id=store_id, created_at=now, cancelled=False
                    )
                )
            await session.execute(
                delete(VectorStoreChunkRow).where(
                    VectorStoreChunkRow.vector_store_id == store_id,
                    VectorStoreChunkRow.file_id.in_(ids),
                )
            )
            await session.execute(
                delete(VectorStoreFileRow).where(
                    VectorStoreFileRow.vector_store_id == store_id,
                    VectorStoreFileRow.file_id.in_(ids),
                )
            )
            await session.flush()
            session.add_all(
                VectorStoreFileRow(
                    vector_store_id=store_id,
                    file_id=file_id,
                    batch_id=batch_id,
                    filename=filename,
                    status="in_progress",
                    usage_bytes=0,
                    created_at=now,
                    last_error=None,
                    chunking=chunking,
                    attributes=attributes,
                    attempts=0,
                )
                for file_id, filename, chunking, attributes in entries
            )
            await self._bump(session, store_id)

    async def _bump(self, session: Any, store_id: str) -> None:
        await session.execute(
            update(VectorStoreRow)
            .where(VectorStoreRow.id == store_id)
            .values(version=VectorStoreRow.version + 1)
        )

    async def get_file(self, store_id: str, file_id: str) -> VectorStoreFileInfo | None:
        async with self._db.session() as session:
            row = await session.get(VectorStoreFileRow, (store_id, file_id))
            return None if row is None else VectorStoreFileInfo.from_row(row)

    async def list_files(
        self,
        store_id: str,
        *,
        status: str | None = None,
        batch_id: str | None = None,
        after: str | None,
        limit: int,
        descending: bool,
    ) -> tuple[list[VectorStoreFileInfo], bool]:
        query = select(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == store_id)
        if status is not None:
            query = query.where(VectorStoreFileRow.status == status)
        if batch_id is not None:
            query = query.where(VectorStoreFileRow.batch_id == batch_id)
        async with self._db.session() as session:
            if after is not None:
                cursor = await session.get(VectorStoreFileRow, (store_id, after))
                if cursor is not None:
                    pivot = (cursor.created_at, cursor.file_id)
                    query = page_after(
                        query,
                        VectorStoreFileRow.created_at,
                        VectorStoreFileRow.file_id,
                        pivot,
                        descending=descending,
                    )
            order = page_order(
                VectorStoreFileRow.created_at, VectorStoreFileRow.file_id, descending=descending
            )
            rows = (await session.scalars(query.order_by(*order).limit(limit + 1))).all()
        return [VectorStoreFileInfo.from_row(r) for r in rows[:limit]], len(rows) > limit

    async def set_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> bool:
        async with self._db.session() as session:
            row = await session.get(VectorStoreFileRow, (store_id, file_id))
            if row is None:
                return False
            row.attributes = attributes
            await self._bump(session, store_id)
        return True

    async def delete_file(self, store_id: str, file_id: str) -> bool:
        async with self._db.session() as session:
            await session.execute(
                delete(VectorStoreChunkRow).where(
                    VectorStoreChunkRow.vector_store_id == store_id,
                    VectorStoreChunkRow.file_id == file_id,
                )
            )
            result = await session.execute(
                delete(VectorStoreFileRow).where(
                    VectorStoreFileRow.vector_store_id == store_id,
                    VectorStoreFileRow.file_id == file_id,
                )
            )
            await self._bump(session, store_id)
        return bool(getattr(result, "rowcount", 0))

    async def file_attributes(self, store_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """Completed files: id -> (filename, attributes)."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(
                    VectorStoreFileRow.file_id,
                    VectorStoreFileRow.filename,
                    VectorStoreFileRow.attributes,
                ).where(
                    VectorStoreFileRow.vector_store_id == store_id,
                    VectorStoreFileRow.status == "completed",
                )
            )
            return {file_id: (name, attributes or {}) for file_id, name, attributes in rows}

    # -- file batches ---------------------------------------------------------------------

    async def get_batch(self, store_id: str, batch_id: str) -> tuple[float, bool] | None:
        """A batch's ``(created_at, cancelled)``."""
        async with self._db.session() as session:
            row = await session.get(VectorStoreFileBatchRow, batch_id)
            if row is None or row.vector_store_id != store_id:
                return None
            return row.created_at, row.cancelled

    async def batch_counts(self, store_id: str, batch_id: str) -> dict[str, int]:
        counts = dict.fromkeys(FILE_STATUSES, 0)
        async with self._db.session() as session:
            grouped = await session.execute(
                select(VectorStoreFileRow.status, func.count())
                .where(
                    VectorStoreFileRow.vector_store_id == store_id,
                    VectorStoreFileRow.batch_id == batch_id,
                )
                .group_by(VectorStoreFileRow.status)
            )
            for status, count in grouped:
                counts[status] = int(count)
        counts["total"] = sum(counts[s] for s in FILE_STATUSES)
        return counts

    async def cancel_batch(self, store_id: str, batch_id: str) -> None:
        """Files of the batch not yet ingested become ``cancelled`` (an ingestion in flight
        finds its lease gone and stores nothing)."""
        async with self._db.session() as session:
            await session.execute(
                update(VectorStoreFileBatchRow)
                .where(VectorStoreFileBatchRow.id == batch_id)
                .values(cancelled=True)
            )
            await session.execute(
                update(VectorStoreFileRow)
                .where(
                    VectorStoreFileRow.vector_store_id == store_id,
                    VectorStoreFileRow.batch_id == batch_id,
                    VectorStoreFileRow.status == "in_progress",
                )
                .values(status="cancelled", lease_owner=None, lease_until=None)
            )

    # -- ingestion ------------------------------------------------------------------------

    async def claim(self, owner: str, lease: float, limit: int) -> list[VectorStoreFileInfo]:
        """Take up to ``limit`` files waiting for ingestion (or whose lease lapsed)."""
        now = time.time()
        async with self._db.session() as session:
            candidates = (
                await session.scalars(
                    select(VectorStoreFileRow)
                    .where(
                        VectorStoreFileRow.status == "in_progress",
                        or_(
                            VectorStoreFileRow.lease_until.is_(None),
                            VectorStoreFileRow.lease_until < now,
                        ),
                    )
                    .order_by(VectorStoreFileRow.created_at)
                    .limit(limit)
                )
            ).all()
            keys = [(c.vector_store_id, c.file_id, c.lease_until) for c in candidates]
        claimed: list[VectorStoreFileInfo] = []
        for store_id, file_id, seen in keys:
            async with self._db.session() as session:
                lease_cond = (
                    VectorStoreFileRow.lease_until.is_(None)
                    if seen is None
                    else VectorStoreFileRow.lease_until == seen
                )
                result = await session.execute(
                    update(VectorStoreFileRow)
                    .where(
                        VectorStoreFileRow.vector_store_id == store_id,
                        VectorStoreFileRow.file_id == file_id,
                        VectorStoreFileRow.status == "in_progress",
                        lease_cond,
                    )
                    .values(
                        lease_owner=owner,
                        lease_until=now + lease,
                        attempts=VectorStoreFileRow.attempts + 1,
                    )
                )
                if getattr(result, "rowcount", 0) == 1:
                    row = await session.get(VectorStoreFileRow, (store_id, file_id))
                    if row is not None:
                        claimed.append(VectorStoreFileInfo.from_row(row))
        return claimed

    async def renew(self, store_id: str, file_id: str, owner: str, lease: float) -> bool:
        async with self._db.session() as session:
            result = await session.execute(
                update(VectorStoreFileRow)
                .where(*_held(store_id, file_id, owner))
                .values(lease_until=time.time() + lease)
            )
            return getattr(result, "rowcount", 0) == 1

    async def finish(
        self,
        store_id: str,
        file_id: str,
        owner: str,
        *,
        chunks: Sequence[ChunkRecord] = (),
        usage_bytes: int = 0,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Store a file's chunks and mark it ``completed`` — or ``failed`` with ``error`` — in
        one transaction, only while this runner still holds its lease."""
        async with self._db.session() as session:
            result = await session.execute(
                update(VectorStoreFileRow)
                .where(*_held(store_id, file_id, owner))
                .values(
                    status="failed" if error else "completed",
                    last_error=error,
                    usage_bytes=usage_bytes,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                return False
            if chunks:
                rows = [
                    {
                        "vector_store_id": store_id,
                        "file_id": file_id,
                        "seq": c.seq,
                        "start": c.start,
                        "end": c.end,
                        "tokens": c.tokens,
                        "text": c.text,
                        "embedding": c.embedding,
                    }
                    for c in chunks
                ]
                if not self.pgvector:
                    await session.execute(insert(VectorStoreChunkRow), rows)
                else:
                    await self._index(len(chunks[0].embedding) // 4)
                    ids = await session.scalars(
                        insert(VectorStoreChunkRow).returning(
                            VectorStoreChunkRow.id, sort_by_parameter_order=True
                        ),
                        rows,
                    )
                    await self._write_vectors(
                        session,
                        [
                            (chunk_id, store_id, file_id, c.embedding)
                            for chunk_id, c in zip(ids.all(), chunks, strict=True)
                        ],
                    )
            await self._bump(session, store_id)
        return True

    # -- search ---------------------------------------------------------------------------

    async def vectors(self, store_id: str) -> tuple[list[int], list[str], list[bytes]]:
        """Every chunk's id, file id and vector bytes, in id order."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(
                        VectorStoreChunkRow.id,
                        VectorStoreChunkRow.file_id,
                        VectorStoreChunkRow.embedding,
                    )
                    .where(VectorStoreChunkRow.vector_store_id == store_id)
                    .order_by(VectorStoreChunkRow.id)
                )
            ).all()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    async def keyword(self, store_id: str, query: str, limit: int) -> list[tuple[int, str, float]]:
        """Chunk ids matching ``query``'s words, best first, with a relevance (higher better):
        BM25 from FTS5 on SQLite, ``ts_rank_cd`` on PostgreSQL."""
        async with self._db.session() as session:
            if self._db.is_sqlite:
                match = fts5_query(query)
                if match is None:
                    return []
                rows = await session.execute(
                    text(
                        "SELECT c.id, c.file_id, -bm25(vector_store_chunks_fts) AS score"
                        " FROM vector_store_chunks_fts JOIN vector_store_chunks c"
                        " ON c.id = vector_store_chunks_fts.rowid"
                        " WHERE vector_store_chunks_fts MATCH :match"
                        " AND c.vector_store_id = :store ORDER BY score DESC LIMIT :limit"
                    ),
                    {"match": match, "store": store_id, "limit": limit},
                )
            else:
                words = keywords(query)
                if not words:
                    return []
                rows = await session.execute(
                    text(
                        "SELECT id, file_id, ts_rank_cd(search_vector, q) AS score"
                        " FROM vector_store_chunks,"
                        " to_tsquery('english', :terms) AS q"
                        " WHERE vector_store_id = :store"
                        " AND search_vector @@ q"
                        " ORDER BY score DESC LIMIT :limit"
                    ),
                    {
                        "terms": " | ".join(words),
                        "store": store_id,
                        "limit": limit,
                    },
                )
            return [(int(r[0]), str(r[1]), float(r[2])) for r in rows]

    async def file_chunks(self, store_id: str, file_id: str) -> list[StoredChunk]:
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(VectorStoreChunkRow)
                    .where(
                        VectorStoreChunkRow.vector_store_id == store_id,
                        VectorStoreChunkRow.file_id == file_id,
                    )
                    .order_by(VectorStoreChunkRow.seq)
                )
            ).all()
        return [
            StoredChunk(r.id, r.vector_store_id, r.file_id, r.seq, r.start, r.end, r.text)
            for r in rows
        ]

    async def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(VectorStoreChunkRow).where(VectorStoreChunkRow.id.in_(list(ids)))
                )
            ).all()
        return {
            r.id: StoredChunk(r.id, r.vector_store_id, r.file_id, r.seq, r.start, r.end, r.text)
            for r in rows
        }
