"""Files in the store: metadata rows and content in sealed chunks (AES-GCM under the keyring's
newest data key, authenticated with the file id and the chunk's place, so chunks cannot be
swapped between files or reordered). A file is written in one transaction: it exists whole or
not at all. Files belong to the key that stored them and to that key's owner (team)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from chatgate.state.db import Database
from chatgate.state.keyring import Keyring, Sealed
from chatgate.state.paging import page_after, page_order
from chatgate.state.tables import FileChunkRow, FileRow

__all__ = ["CHUNK_BYTES", "FileAccess", "FileInfo", "FileStore", "FileTooLarge", "new_file_id"]

CHUNK_BYTES = 1 << 20
"""Plaintext bytes per sealed chunk."""


def new_file_id() -> str:
    return "file-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


@dataclass(frozen=True, slots=True)
class FileAccess:
    """Who asks: a key (and its owner), or an admin who sees everything."""

    key_id: str | None
    owner: str | None
    admin: bool = False

    def condition(
        self,
        key_column: InstrumentedAttribute[str | None] = FileRow.key_id,
        owner_column: InstrumentedAttribute[str | None] = FileRow.owner,
    ) -> ColumnElement[bool] | None:
        """Rows (files by default; any table with key and owner columns) this caller sees."""
        if self.admin:
            return None
        clauses = [key_column == self.key_id] if self.key_id is not None else []
        if self.owner is not None:
            clauses.append(owner_column == self.owner)
        if not clauses:  # open mode without a key: only rows stored without one
            return key_column.is_(None)
        return or_(*clauses)


@dataclass(frozen=True, slots=True)
class FileInfo:
    id: str
    key_id: str | None
    owner: str | None
    purpose: str
    filename: str
    bytes: int
    created_at: float
    expires_at: float | None

    @classmethod
    def from_row(cls, row: FileRow) -> FileInfo:
        return cls(
            row.id,
            row.key_id,
            row.owner,
            row.purpose,
            row.filename,
            row.bytes,
            row.created_at,
            row.expires_at,
        )


class FileTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


async def _pieces(content: bytes | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if isinstance(content, bytes):
        yield content
    else:
        async for piece in content:
            yield piece


def _context(file_id: str, seq: int) -> bytes:
    return f"file:{file_id}:{seq}".encode()


class FileStore:
    def __init__(self, db: Database, keyring: Keyring):
        self._db = db
        self._keyring = keyring

    async def create(
        self,
        content: bytes | AsyncIterator[bytes],
        *,
        purpose: str,
        filename: str,
        key_id: str | None,
        owner: str | None,
        expires_at: float | None = None,
        max_bytes: int | None = None,
    ) -> FileInfo:
        """Store a file from bytes or an iterator of pieces, in one transaction. Raises
        ``FileTooLarge`` (nothing stored) when it passes ``max_bytes``."""
        file_id = new_file_id()
        row = FileRow(
            id=file_id,
            key_id=key_id,
            owner=owner,
            purpose=purpose,
            filename=filename,
            bytes=0,
            created_at=time.time(),
            expires_at=expires_at,
        )
        async with self._db.session() as session:
            session.add(row)
            await session.flush()
            seq, pending = 0, bytearray()
            async for piece in _pieces(content):
                row.bytes += len(piece)
                if max_bytes is not None and row.bytes > max_bytes:
                    raise FileTooLarge(max_bytes)
                pending += piece
                while len(pending) >= CHUNK_BYTES:
                    self._add_chunk(session, file_id, seq, bytes(pending[:CHUNK_BYTES]))
                    del pending[:CHUNK_BYTES]
                    seq += 1
            if pending or seq == 0:
                self._add_chunk(session, file_id, seq, bytes(pending))
        return FileInfo.from_row(row)

    def _add_chunk(self, session: AsyncSession, file_id: str, seq: int, plain: bytes) -> None:
        sealed = self._keyring.seal(plain, _context(file_id, seq))
        session.add(
            FileChunkRow(
                file_id=file_id,
                seq=seq,
                key_id=sealed.key_id,
                nonce=sealed.nonce,
                ciphertext=sealed.ciphertext,
            )
        )

    async def get(self, file_id: str, access: FileAccess) -> FileInfo | None:
        query = select(FileRow).where(FileRow.id == file_id)
        condition = access.condition()
        if condition is not None:
            query = query.where(condition)
        async with self._db.session() as session:
            row = await session.scalar(query)
            if row is None or (row.expires_at is not None and row.expires_at < time.time()):
                return None
            return FileInfo.from_row(row)

    async def get_any(self, file_id: str) -> FileInfo | None:
        """A file whoever owns it (for work already authorised, e.g. ingestion)."""
        return await self.get(file_id, FileAccess(None, None, admin=True))

    async def list_files(
        self,
        access: FileAccess,
        *,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 10_000,
        descending: bool = True,
    ) -> tuple[list[FileInfo], bool]:
        """A page of files (newest first unless ``descending`` is false) and whether more follow."""
        query = select(FileRow)
        condition = access.condition()
        if condition is not None:
            query = query.where(condition)
        if purpose is not None:
            query = query.where(FileRow.purpose == purpose)
        query = query.where(or_(FileRow.expires_at.is_(None), FileRow.expires_at >= time.time()))
        async with self._db.session() as session:
            if after is not None:
                cursor = await session.get(FileRow, after)
                if cursor is not None:
                    pivot = (cursor.created_at, cursor.id)
                    query = page_after(
                        query, FileRow.created_at, FileRow.id, pivot, descending=descending
                    )
            order = page_order(FileRow.created_at, FileRow.id, descending=descending)
            rows = (await session.scalars(query.order_by(*order).limit(limit + 1))).all()
        return [FileInfo.from_row(r) for r in rows[:limit]], len(rows) > limit

    async def chunks(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's content, chunk by chunk, decrypted."""
        seq = 0
        while True:
            async with self._db.session() as session:
                row = await session.get(FileChunkRow, (file_id, seq))
                if row is None:
                    return
                sealed = Sealed(row.key_id, row.nonce, row.ciphertext)
            yield self._keyring.open(sealed, _context(file_id, seq))
            seq += 1

    async def read(self, file_id: str) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(file_id)])

    async def delete(self, file_id: str) -> None:
        async with self._db.session() as session:
            await session.execute(delete(FileChunkRow).where(FileChunkRow.file_id == file_id))
            await session.execute(delete(FileRow).where(FileRow.id == file_id))
