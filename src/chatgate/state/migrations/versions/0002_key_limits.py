"""Rate limits, priority and queue timeout on keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("limits", sa.JSON(), nullable=True))
        table.add_column(sa.Column("priority", sa.String(16), nullable=True))
        table.add_column(sa.Column("queue_timeout", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("queue_timeout")
        table.drop_column("priority")
        table.drop_column("limits")
