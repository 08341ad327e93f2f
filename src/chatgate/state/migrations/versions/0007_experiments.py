"""Experiment and variant on the request log; feedback on answers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.add_column(sa.Column("experiment", sa.String(64)))
        table.add_column(sa.Column("variant", sa.String(64)))
    op.create_index("ix_request_log_experiment", "request_log", ["experiment", "variant"])
    op.create_table(
        "feedback",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("score", sa.Float()),
        sa.Column("label", sa.String(64)),
        sa.Column("comment", sa.String(2000)),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("ix_request_log_experiment", "request_log")
    with op.batch_alter_table("request_log") as table:
        table.drop_column("variant")
        table.drop_column("experiment")
