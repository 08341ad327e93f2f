"""Data keys for encryption at rest: AES-256-GCM, the key id stored beside each record.

The newest key (last in config) encrypts; every configured key decrypts, so keys rotate by
appending a new one and running ``chatgate keys reencrypt``. Records written with no key
configured carry the id ``plain`` and are re-encrypted by the same command once a key exists.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatgate.config import ConfigError, EncryptionConfig, resolve_secret

__all__ = ["PLAIN", "DecryptionError", "Keyring", "Sealed", "new_data_key"]

PLAIN = "plain"
_NONCE = 12


class DecryptionError(Exception):
    """A record could not be decrypted: unknown key id, or tampered ciphertext."""


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


def new_data_key() -> str:
    """A fresh 256-bit data key, base64, for ``encryption.keys[].key_env``/``key_file``."""
    return base64.b64encode(os.urandom(32)).decode()


class Keyring:
    def __init__(self, keys: dict[str, bytes], newest: str | None):
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.newest = newest

    @classmethod
    def from_config(cls, config: EncryptionConfig) -> Keyring:
        keys: dict[str, bytes] = {}
        for i, entry in enumerate(config.keys):
            where = f"encryption.keys[{i}]"
            if entry.id == PLAIN:
                raise ConfigError(f"{where}.id: `{PLAIN}` is reserved")
            if entry.id in keys:
                raise ConfigError(f"{where}.id: duplicate key id `{entry.id}`")
            if not (entry.key_env or entry.key_file):
                raise ConfigError(f"{where}: set `key_env` or `key_file`")
            secret = resolve_secret(entry.key_env, entry.key_file) or ""
            try:
                key = base64.b64decode(secret, validate=True)
            except binascii.Error:
                raise ConfigError(f"{where}: the key is not valid base64") from None
            if len(key) != 32:
                raise ConfigError(f"{where}: the key must be 32 bytes (got {len(key)})")
            keys[entry.id] = key
        return cls(keys, config.keys[-1].id if config.keys else None)

    def seal(self, plaintext: bytes, context: bytes) -> Sealed:
        """Encrypt with the newest key; ``context`` (e.g. the record's id) is authenticated."""
        if self.newest is None:
            return Sealed(PLAIN, b"", plaintext)
        nonce = os.urandom(_NONCE)
        return Sealed(
            self.newest, nonce, self._ciphers[self.newest].encrypt(nonce, plaintext, context)
        )

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        if sealed.key_id == PLAIN:
            return sealed.ciphertext
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise DecryptionError(f"no data key with id `{sealed.key_id}` is configured")
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext, context)
        except InvalidTag:
            raise DecryptionError(
                "the record failed authentication (wrong key or tampered)"
            ) from None
