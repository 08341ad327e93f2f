"""Prompt templates: immutable versions, labels and their history; prompt columns on the
request log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("prompt_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(128), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "prompt_label_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.Integer()),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_prompt_label_events_prompt_label", "prompt_label_events", ["prompt_id", "label", "id"]
    )
    versions = sa.table("state_versions", sa.column("name"), sa.column("version"))
    op.bulk_insert(versions, [{"name": "prompts", "version": 0}])
    with op.batch_alter_table("request_log") as table:
        table.add_column(sa.Column("prompt_id", sa.String(128)))
        table.add_column(sa.Column("prompt_version", sa.Integer()))
        table.add_column(sa.Column("prompt_label", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as table:
        table.drop_column("prompt_label")
        table.drop_column("prompt_version")
        table.drop_column("prompt_id")
    op.execute("DELETE FROM state_versions WHERE name = 'prompts'")
    op.drop_table("prompt_label_events")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
