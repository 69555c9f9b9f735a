"""Encryption at rest: AES-256-GCM with keys from `FIELD_ENCRYPTION_KEYS`, newest first.

A sealed blob is ``b"VH1" | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag``. The key id
is a fingerprint of the key, so the list of keys can be reordered or extended freely: the first
key seals, every listed key opens. `reseal` re-encrypts a blob with the newest key (rotation).
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

MAGIC = b"VH1"
KEY_ID_SIZE = 8
NONCE_SIZE = 12
HEADER_SIZE = len(MAGIC) + KEY_ID_SIZE + NONCE_SIZE


class DecryptionError(Exception):
    """The blob is damaged, or was sealed with a key that is no longer configured."""


def key_id_of(key: bytes) -> bytes:
    return hashlib.sha256(b"vh-key-id:" + key).digest()[:KEY_ID_SIZE]


@lru_cache(maxsize=8)
def _parse_keys(configured: tuple[str, ...]) -> tuple[tuple[bytes, AESGCM], ...]:
    keys = []
    for text in configured:
        raw = base64.urlsafe_b64decode(text.encode())
        keys.append((key_id_of(raw), AESGCM(raw)))
    return tuple(keys)


def _keys() -> tuple[tuple[bytes, AESGCM], ...]:
    return _parse_keys(tuple(settings.FIELD_ENCRYPTION_KEYS))


def current_key_id() -> str:
    return _keys()[0][0].hex()


def seal(plaintext: bytes, *, context: bytes = b"") -> bytes:
    """Encrypt with the newest key; `context` (e.g. a row identity) is authenticated, not stored."""
    key_id, aead = _keys()[0]
    nonce = os.urandom(NONCE_SIZE)
    return MAGIC + key_id + nonce + aead.encrypt(nonce, plaintext, context or None)


def key_id_for(blob: bytes) -> str:
    if not blob.startswith(MAGIC) or len(blob) < HEADER_SIZE:
        raise DecryptionError("not a sealed blob")
    return blob[len(MAGIC) : len(MAGIC) + KEY_ID_SIZE].hex()


def open_sealed(blob: bytes, *, context: bytes = b"") -> bytes:
    wanted = bytes.fromhex(key_id_for(blob))
    for key_id, aead in _keys():
        if key_id == wanted:
            nonce = blob[len(MAGIC) + KEY_ID_SIZE : HEADER_SIZE]
            try:
                return aead.decrypt(nonce, blob[HEADER_SIZE:], context or None)
            except InvalidTag:
                raise DecryptionError("the blob was altered or the context differs") from None
    raise DecryptionError(f"key {wanted.hex()} is not configured")


def needs_reseal(blob: bytes) -> bool:
    return key_id_for(blob) != current_key_id()


def reseal(blob: bytes, *, context: bytes = b"") -> bytes:
    """Re-encrypt with the newest key (a no-op copy when it already uses it)."""
    if not needs_reseal(blob):
        return blob
    return seal(open_sealed(blob, context=context), context=context)
