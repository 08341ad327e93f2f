"""Vector stores (OpenAI's Vector Stores API): stores, their files and file batches, and the
chunk index (text, vector, keyword index).

The keyword index is dialect-specific: an FTS5 table kept in sync by triggers on SQLite; on
PostgreSQL a stored generated ``tsvector`` column (computed once per chunk, not per query) with a
GIN index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FTS = [
    "CREATE VIRTUAL TABLE vector_store_chunks_fts USING fts5(text, content='vector_store_chunks',"
    " content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER vector_store_chunks_ai AFTER INSERT ON vector_store_chunks BEGIN"
    " INSERT INTO vector_store_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER vector_store_chunks_ad AFTER DELETE ON vector_store_chunks BEGIN"
    " INSERT INTO vector_store_chunks_fts(vector_store_chunks_fts, rowid, text)"
    " VALUES ('delete', old.id, old.text); END",
]


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(32)),
        sa.Column("owner", sa.String(200)),
        sa.Column("name", sa.String(512)),
        sa.Column("description", sa.String(512)),
        sa.Column("metadata", sa.JSON()),
        sa.Column("expires_after", sa.JSON()),
        sa.Column("expires_at", sa.Float()),
        sa.Column("last_active_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_vector_stores_key_id", "vector_stores", ["key_id"])
    op.create_index("ix_vector_stores_owner", "vector_stores", ["owner"])
    op.create_index("ix_vector_stores_created_at", "vector_stores", ["created_at"])
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "vector_store_id",
            sa.String(40),
            sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "vector_store_files",
        sa.Column(
            "vector_store_id",
            sa.String(40),
            sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("file_id", sa.String(40), primary_key=True),
        sa.Column("batch_id", sa.String(40), index=True),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.JSON()),
        sa.Column("chunking", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON()),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float()),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_table(
        "vector_store_chunks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "vector_store_id",
            sa.String(40),
            sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ix_vector_store_chunks_store_file", "vector_store_chunks", ["vector_store_id", "file_id"]
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in _FTS:
            op.execute(statement)
    else:
        op.execute(
            "ALTER TABLE vector_store_chunks ADD COLUMN search_vector tsvector"
            " GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute(
            "CREATE INDEX ix_vector_store_chunks_search ON vector_store_chunks"
            " USING GIN (search_vector)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS vector_store_chunks_fts")
    op.drop_table("vector_store_chunks")
    op.drop_table("vector_store_files")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_stores")
