"""The state store (SQLAlchemy; SQLite embedded, PostgreSQL for replicas) and its repositories."""

from chatgate.state.audit import AuditEntry, AuditLog
from chatgate.state.bodies import BodyStore
from chatgate.state.db import Database
from chatgate.state.keyring import DecryptionError, Keyring, new_data_key
from chatgate.state.keys import ApiKey, KeySpec, KeyStore, hash_secret, looks_like_key, new_secret

__all__ = [
    "ApiKey",
    "AuditEntry",
    "AuditLog",
    "BodyStore",
    "Database",
    "DecryptionError",
    "KeySpec",
    "KeyStore",
    "Keyring",
    "hash_secret",
    "looks_like_key",
    "new_data_key",
    "new_secret",
]
