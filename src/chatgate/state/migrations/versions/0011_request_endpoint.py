"""The endpoint of every request-log row: every operation is logged, not chat alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.add_column(
            sa.Column(
                "endpoint",
                sa.String(64),
                nullable=False,
                server_default="/v1/chat/completions",  # every row before this was chat
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.drop_column("endpoint")
