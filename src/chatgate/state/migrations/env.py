"""Alembic environment: runs migrations on the chatgate ``Database`` that invoked them."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.state.tables import Base

database = context.config.attributes["database"]


def _run(connection: Connection) -> None:
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
