"""The state store (SQLAlchemy; SQLite embedded, PostgreSQL for replicas) and its repositories."""

from chatgate.state.audit import AuditEntry, AuditLog
from chatgate.state.db import Database
from chatgate.state.keys import ApiKey, KeySpec, KeyStore, hash_secret, looks_like_key, new_secret

__all__ = [
    "ApiKey",
    "AuditEntry",
    "AuditLog",
    "Database",
    "KeySpec",
    "KeyStore",
    "hash_secret",
    "looks_like_key",
    "new_secret",
]
