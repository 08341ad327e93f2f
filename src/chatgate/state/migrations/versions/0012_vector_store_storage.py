"""Vector stores' size per day, for storage charged in GB-days.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_store_storage",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("vector_store_id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(32)),
        sa.Column("owner", sa.String(200)),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vector_store_storage")
