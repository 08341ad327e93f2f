"""Stored request and response bodies, always sealed by the keyring before they reach the store."""

from __future__ import annotations

import time

from sqlalchemy import select

from chatgate.state.db import Database
from chatgate.state.keyring import Keyring, Sealed
from chatgate.state.tables import StoredBodyRow

__all__ = ["BodyStore"]

_BATCH = 500


def _context(request_id: str, kind: str) -> bytes:
    return f"chatgate-body:{request_id}:{kind}".encode()


class BodyStore:
    def __init__(self, db: Database, keyring: Keyring):
        self._db = db
        self._keyring = keyring

    async def put(self, request_id: str, kind: str, body: bytes) -> None:
        sealed = self._keyring.seal(body, _context(request_id, kind))
        async with self._db.session() as session:
            session.add(
                StoredBodyRow(
                    request_id=request_id,
                    kind=kind,
                    key_id=sealed.key_id,
                    nonce=sealed.nonce,
                    ciphertext=sealed.ciphertext,
                    created_at=time.time(),
                )
            )

    async def put_many(self, bodies: list[tuple[str, str, bytes]]) -> None:
        """Store (request id, kind, body) triples in one transaction."""
        now = time.time()
        async with self._db.session() as session:
            for request_id, kind, body in bodies:
                sealed = self._keyring.seal(body, _context(request_id, kind))
                session.add(
                    StoredBodyRow(
                        request_id=request_id,
                        kind=kind,
                        key_id=sealed.key_id,
                        nonce=sealed.nonce,
                        ciphertext=sealed.ciphertext,
                        created_at=now,
                    )
                )

    async def get(self, request_id: str) -> dict[str, bytes]:
        """The bodies stored for a request, by kind (``request``, ``response``), decrypted."""
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(StoredBodyRow).where(StoredBodyRow.request_id == request_id)
                )
            ).all()
            return {
                row.kind: self._keyring.open(
                    Sealed(row.key_id, row.nonce, row.ciphertext),
                    _context(row.request_id, row.kind),
                )
                for row in rows
            }

    async def reencrypt(self) -> int:
        """Re-seal every record not under the newest key; returns how many changed."""
        newest = self._keyring.newest
        if newest is None:
            return 0
        changed = 0
        last_id = 0
        while True:
            async with self._db.session() as session:
                rows = (
                    await session.scalars(
                        select(StoredBodyRow)
                        .where(StoredBodyRow.key_id != newest, StoredBodyRow.id > last_id)
                        .order_by(StoredBodyRow.id)
                        .limit(_BATCH)
                        .with_for_update()
                    )
                ).all()
                for row in rows:
                    context = _context(row.request_id, row.kind)
                    plain = self._keyring.open(
                        Sealed(row.key_id, row.nonce, row.ciphertext), context
                    )
                    sealed = self._keyring.seal(plain, context)
                    row.key_id, row.nonce, row.ciphertext = (
                        sealed.key_id,
                        sealed.nonce,
                        sealed.ciphertext,
                    )
                    last_id = row.id
                changed += len(rows)
            if len(rows) < _BATCH:
                return changed
