"""What the guards flagged, per request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.add_column(sa.Column("guard_flags", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.drop_column("guard_flags")
