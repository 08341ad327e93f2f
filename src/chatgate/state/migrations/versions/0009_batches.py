"""Batches (OpenAI's Batch API) and their lines.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(32)),
        sa.Column("owner", sa.String(200)),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(40), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", sa.JSON()),
        sa.Column("errors", sa.JSON()),
        sa.Column("output_file_id", sa.String(40)),
        sa.Column("error_file_id", sa.String(40)),
        sa.Column("model", sa.String(200)),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        *(
            sa.Column(name, sa.Float())
            for name in (
                "in_progress_at",
                "finalizing_at",
                "completed_at",
                "failed_at",
                "expired_at",
                "cancelling_at",
                "cancelled_at",
            )
        ),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("total", "completed", "failed")
        ),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens")
        ),
        sa.Column("cost", sa.Float(), nullable=False),
    )
    op.create_index("ix_batches_key_id", "batches", ["key_id"])
    op.create_index("ix_batches_owner", "batches", ["owner"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_index("ix_batches_created_at", "batches", ["created_at"])
    op.create_table(
        "batch_items",
        sa.Column(
            "batch_id",
            sa.String(40),
            sa.ForeignKey("batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line", sa.Integer(), primary_key=True),
        sa.Column("custom_id", sa.String(512), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("ok", sa.Boolean()),
        sa.Column("result_key_id", sa.String(64)),
        sa.Column("result_nonce", sa.LargeBinary()),
        sa.Column("result", sa.LargeBinary()),
    )
    op.create_index("ix_batch_items_state", "batch_items", ["batch_id", "state", "line"])


def downgrade() -> None:
    op.drop_table("batch_items")
    op.drop_table("batches")
