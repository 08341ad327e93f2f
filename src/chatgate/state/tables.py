"""The store's tables (SQLAlchemy 2). Times are Unix seconds (float) on every backend."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKeyRow",
    "ApiKeySecretRow",
    "AuditRow",
    "Base",
    "BatchItemRow",
    "BatchRow",
    "FeedbackRow",
    "FileChunkRow",
    "FileRow",
    "PromptLabelEventRow",
    "PromptLabelRow",
    "PromptVersionRow",
    "RequestLogRow",
    "SpendRow",
    "StateVersionRow",
    "StoredBodyRow",
    "TokenUseRow",
    "VectorStoreChunkRow",
    "VectorStoreFileBatchRow",
    "VectorStoreFileRow",
    "VectorStoreRow",
    "VectorStoreStorageRow",
]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        dict[str, Any] | None: JSON,
        list[str]: JSON,
    }


class StateVersionRow(Base):
    """A change counter per kind of state; replicas poll it to invalidate caches."""

    __tablename__ = "state_versions"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    allowed_models: Mapped[list[str]]
    allowed_endpoints: Mapped[list[str]]
    expires_at: Mapped[float | None] = mapped_column(Float)
    key_metadata: Mapped[dict[str, Any]] = mapped_column("metadata")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    limits: Mapped[dict[str, Any] | None]
    priority: Mapped[str | None] = mapped_column(String(16))
    queue_timeout: Mapped[float | None] = mapped_column(Float)
    budget: Mapped[dict[str, Any] | None]


class ApiKeySecretRow(Base):
    """A secret's SHA-256; a key has one current secret, plus old ones during a rotation grace."""

    __tablename__ = "api_key_secrets"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_api_key_secrets_key_id", "key_id"),)


class TokenUseRow(Base):
    """Requests made with a browser token that carries a request limit."""

    __tablename__ = "token_uses"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    used: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class AuditRow(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]


class SpendRow(Base):
    __tablename__ = "spend"
    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class RequestLogRow(Base):
    __tablename__ = "request_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[float] = mapped_column(Float, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    model_served: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float)
    request_bytes: Mapped[int] = mapped_column(Integer)
    response_bytes: Mapped[int] = mapped_column(Integer)
    queue_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    upstream_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)
    overhead_ms: Mapped[float | None] = mapped_column(Float)
    cache: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    stream: Mapped[bool]
    priority: Mapped[str | None] = mapped_column(String(16))
    prompt_id: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[int | None] = mapped_column(Integer)
    prompt_label: Mapped[str | None] = mapped_column(String(64))
    guard_flags: Mapped[str | None] = mapped_column(String(500))
    experiment: Mapped[str | None] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64), server_default="/v1/chat/completions")
    client_request_id: Mapped[str | None] = mapped_column(String(128))
    usage_source: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_request_log_experiment", "experiment", "variant"),
        Index("ix_request_log_request_id", "request_id"),
    )


class StoredBodyRow(Base):
    """A request or response body, encrypted with AES-GCM under the data key ``key_id``."""

    __tablename__ = "stored_bodies"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)


class PromptVersionRow(Base):
    """One immutable version of a prompt template."""

    __tablename__ = "prompt_versions"
    prompt_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))


class PromptLabelRow(Base):
    """Where a label (``production``, ``staging``, ...) of a prompt points now."""

    __tablename__ = "prompt_labels"
    prompt_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Float)


class PromptLabelEventRow(Base):
    """Every move of a label, oldest first: its history, and what a rollback returns to."""

    __tablename__ = "prompt_label_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_prompt_label_events_prompt_label", "prompt_id", "label", "id"),)


class FeedbackRow(Base):
    """What a caller said about an answer (``POST /v1/feedback``)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    """Who gave it (only feedback from the key that made the request counts in reports)."""
    score: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(2000))
    at: Mapped[float] = mapped_column(Float)


class FileRow(Base):
    """An uploaded (or batch-produced) file; its bytes live sealed in ``file_chunks``."""

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    expires_at: Mapped[float | None] = mapped_column(Float)


class FileChunkRow(Base):
    """One piece of a file's content, sealed with the keyring (context: file id and piece)."""

    __tablename__ = "file_chunks"
    file_id: Mapped[str] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class BatchRow(Base):
    """A batch (OpenAI's Batch API): its lifecycle, counts and usage totals."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    batch_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    errors: Mapped[dict[str, Any] | None]
    output_file_id: Mapped[str | None] = mapped_column(String(40))
    error_file_id: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float, index=True)
    expires_at: Mapped[float] = mapped_column(Float)
    in_progress_at: Mapped[float | None] = mapped_column(Float)
    finalizing_at: Mapped[float | None] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    failed_at: Mapped[float | None] = mapped_column(Float)
    expired_at: Mapped[float | None] = mapped_column(Float)
    cancelling_at: Mapped[float | None] = mapped_column(Float)
    cancelled_at: Mapped[float | None] = mapped_column(Float)
    total: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[float] = mapped_column(Float)


class BatchItemRow(Base):
    """One line of a batch: its request and, once committed, its result (both sealed). A
    runner leases the line while it works on it; the result is committed once, by the holder
    of the lease, in the same transaction as the batch's counts."""

    __tablename__ = "batch_items"
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16))
    """``pending``, ``running`` (leased) or ``done``."""
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    request: Mapped[bytes] = mapped_column(LargeBinary)
    ok: Mapped[bool | None]
    result_key_id: Mapped[str | None] = mapped_column(String(64))
    result_nonce: Mapped[bytes | None] = mapped_column(LargeBinary)
    result: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_batch_items_state", "batch_id", "state", "line"),)


class VectorStoreRow(Base):
    """A vector store; ``version`` moves whenever its chunks change (search caches follow it)."""

    __tablename__ = "vector_stores"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    name: Mapped[str | None] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(String(512))
    store_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    expires_after: Mapped[dict[str, Any] | None]
    expires_at: Mapped[float | None] = mapped_column(Float)
    last_active_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    embedding_model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)


class VectorStoreFileBatchRow(Base):
    __tablename__ = "vector_store_file_batches"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(
        ForeignKey("vector_stores.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[float] = mapped_column(Float)
    cancelled: Mapped[bool] = mapped_column(Boolean)


class VectorStoreFileRow(Base):
    """A file attached to a vector store, and its ingestion (claimed under a lease)."""

    __tablename__ = "vector_store_files"
    vector_store_id: Mapped[str] = mapped_column(
        ForeignKey("vector_stores.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)
    usage_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[dict[str, Any] | None]
    chunking: Mapped[dict[str, Any]]
    attributes: Mapped[dict[str, Any] | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)


class VectorStoreChunkRow(Base):
    """One chunk: its place in the source text, the text, and its float32 vector."""

    __tablename__ = "vector_store_chunks"
    __table_args__ = (Index("ix_vector_store_chunks_store_file", "vector_store_id", "file_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"))
    file_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class VectorStoreStorageRow(Base):
    """A vector store's size on one UTC day: the largest of the day's samples (GB-days of
    storage are charged from these, as OpenAI charges vector storage)."""

    __tablename__ = "vector_store_storage"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(200))
    bytes: Mapped[int] = mapped_column(BigInteger)
