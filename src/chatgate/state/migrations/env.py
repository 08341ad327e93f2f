"""Alembic environment: runs migrations on the chatgate ``Database`` that invoked them, one
process at a time, and never over a schema newer than this chatgate knows."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.state.db import MIGRATION_LOCK, schema_state, too_new
from chatgate.state.tables import Base

database = context.config.attributes["database"]


def _run(connection: Connection) -> None:
    if not database.is_sqlite:
        # Held until this transaction ends: concurrent migrators queue here, and each one after
        # the first reads the version table only once the one before has committed.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    state = schema_state(connection, context.script)
    if state.unknown:
        raise too_new(state, database.url)
    if database.is_sqlite:
        connection.rollback()  # end the read; Alembic runs SQLite's migrations as it always has
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=database.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    # A fresh engine: this runs in Alembic's own thread and event loop.
    engine = create_async_engine(database.url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_main())
