"""Who counted a request's usage: the upstream, or the gateway (a stream that sent none).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.add_column(sa.Column("usage_source", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.drop_column("usage_source")
