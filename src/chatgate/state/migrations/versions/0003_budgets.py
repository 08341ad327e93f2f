"""Budgets on keys, and settled spend per scope and period.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("budget", sa.JSON(), nullable=True))
    op.create_table(
        "spend",
        sa.Column("scope", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spend")
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("budget")
