"""One record per request (the request log behind usage reports).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("owner", sa.String(200)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_served", sa.String(200)),
        sa.Column("provider", sa.String(32)),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("request_bytes", sa.Integer(), nullable=False),
        sa.Column("response_bytes", sa.Integer(), nullable=False),
        sa.Column("queue_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        sa.Column("upstream_ms", sa.Float()),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("overhead_ms", sa.Float()),
        sa.Column("cache", sa.String(16)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.String(16)),
    )
    op.create_index("ix_request_log_at", "request_log", ["at"])
    op.create_index("ix_request_log_key_at", "request_log", ["key_id", "at"])
    op.create_index("ix_request_log_model_at", "request_log", ["model", "at"])
    op.create_index("ix_request_log_owner_at", "request_log", ["owner", "at"])


def downgrade() -> None:
    op.drop_table("request_log")
