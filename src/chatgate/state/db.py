"""The store's engine and sessions, and migrations (Alembic) — SQLite by default, PostgreSQL for
replicas. The same code runs on both.

Migrations run one process at a time: replicas started together on an empty database (a rolling
deploy, ``--scale``, a Deployment's pods) would otherwise race to create the same tables. On
PostgreSQL the migration transaction first takes a transaction-level advisory lock (released by
its commit or rollback, so a crashed migrator never leaves it held); on SQLite an exclusive
``flock`` on a file beside the database (released by the kernel when its holder exits). Whoever
waits migrates next, finds the schema current, and does nothing."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "MIGRATION_LOCK",
    "Database",
    "SchemaError",
    "SchemaState",
    "exposed",
    "private_file",
    "schema_state",
]

MIGRATION_LOCK = 0x63686174_67617465
"""The PostgreSQL advisory lock key every chatgate migration takes ("chatgate" in ASCII)."""


class SchemaError(Exception):
    """The store's schema is not one this chatgate can serve (newer than it knows, or behind
    with migrations off); the message says what to do."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: tuple[str, ...]
    """The database's revisions (empty: never migrated)."""
    head: str
    """The newest revision this chatgate knows."""
    unknown: tuple[str, ...]
    """Revisions in the database that this chatgate does not know: a newer chatgate wrote them."""

    @property
    def up_to_date(self) -> bool:
        return self.current == (self.head,)


def schema_state(connection: Connection, script: ScriptDirectory) -> SchemaState:
    current = tuple(MigrationContext.configure(connection).get_current_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    head = script.get_current_head()
    assert head is not None, "chatgate ships its migrations"
    return SchemaState(current, head, tuple(r for r in current if r not in known))


def too_new(state: SchemaState, url: str) -> SchemaError:
    where = make_url(url).render_as_string(hide_password=True)
    return SchemaError(
        f"the store at {where} has schema revision {', '.join(state.unknown)}, newer than this "
        f"chatgate knows (its newest is {state.head}): a newer chatgate migrated it. Run that "
        "version (or newer), or point store.url at another database."
    )


def private_file(path: Path) -> None:
    """Create ``path``'s folder (0700) and the file itself (0600) if they do not exist yet: the
    store holds keys' hashes, uploaded files and batch lines — in plain text where no data keys
    are configured — so only the user running chatgate may read it. (SQLite gives the database's
    ``-wal`` and ``-shm`` files the database file's own mode.)"""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # whatever the umask
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        path.chmod(0o600)


def exposed(path: Path) -> list[str]:
    """Which of the store's folder, file, ``-wal`` and ``-shm`` others may read or enter."""
    found = []
    for candidate in (
        path.parent,
        path,
        *(path.with_name(path.name + s) for s in ("-wal", "-shm")),
    ):
        with contextlib.suppress(FileNotFoundError):
            mode = candidate.stat().st_mode
            if mode & 0o077:
                found.append(f"{candidate} ({stat.filemode(mode)})")
    return found


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str, *, pool_size: int = 10):
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"pool_pre_ping": True}
        self._file: Path | None = None
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                self._file = Path(parsed.database)
                private_file(self._file)
        else:
            options["pool_size"] = pool_size
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success and rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    def _alembic(self) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(self.migrations))
        config.attributes["database"] = self
        return config

    @property
    def migrations(self) -> Path:
        return Path(str(resources.files("chatgate.state") / "migrations"))

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[None]:
        """SQLite: an exclusive lock on ``<database>.migrate.lock`` while migrations run
        (PostgreSQL takes its advisory lock inside the migration's transaction: env.py)."""
        if self._file is None:
            yield
            return
        path = self._file.with_name(self._file.name + ".migrate.lock")
        private_file(path)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def upgrade(self) -> None:
        """Apply pending migrations (idempotent; one process at a time). Raises
        :class:`SchemaError` when the database is newer than this chatgate."""
        await asyncio.to_thread(self._upgrade)

    def _upgrade(self) -> None:
        with self.migration_lock():
            command.upgrade(self._alembic(), "head")

    async def schema(self) -> SchemaState:
        """Where the database's schema stands against this chatgate's migrations."""
        script = ScriptDirectory(str(self.migrations))
        async with self.engine.connect() as connection:
            return await connection.run_sync(schema_state, script)

    async def check_schema(self) -> None:
        """Raise :class:`SchemaError` unless the schema is exactly what this chatgate expects
        (for servers started with ``store.migrate_on_start: false``)."""
        state = await self.schema()
        if state.unknown:
            raise too_new(state, self.url)
        if not state.up_to_date:
            where = make_url(self.url).render_as_string(hide_password=True)
            raise SchemaError(
                f"the store at {where} is not migrated to this chatgate's schema "
                f"({state.head}; it has {', '.join(state.current) or 'none'}) and "
                "store.migrate_on_start is off: run `chatgate db upgrade` first."
            )

    def exposed(self) -> list[str]:
        """The store's files that others may read (SQLite; nothing for PostgreSQL)."""
        return [] if self._file is None else exposed(self._file)

    async def close(self) -> None:
        await self.engine.dispose()
