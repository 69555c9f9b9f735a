"""AES-GCM sealing with rotating keys (apps.core.crypto) and the encrypted text field."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from apps.core import crypto


@pytest.fixture
def keys(settings: Any) -> tuple[str, str]:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    return old, new


def test_seal_and_open(keys: tuple[str, str]) -> None:
    blob = crypto.seal(b"tension 150/95")
    assert b"tension" not in blob and blob.startswith(crypto.MAGIC)
    assert crypto.open_sealed(blob) == b"tension 150/95"
    assert crypto.seal(b"x") != crypto.seal(b"x")  # fresh nonce each time


def test_tampering_and_wrong_context_are_detected(keys: tuple[str, str]) -> None:
    blob = bytearray(crypto.seal(b"data", context=b"doc-1"))
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(bytes(blob), context=b"doc-2")
    blob[-1] ^= 1
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(bytes(blob), context=b"doc-1")
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(b"plain text")


def test_rotation_keeps_old_blobs_readable_and_reseals(
    keys: tuple[str, str], settings: Any
) -> None:
    old, new = keys
    blob = crypto.seal(b"old secret")
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert crypto.needs_reseal(blob)
    assert crypto.open_sealed(blob) == b"old secret"
    resealed = crypto.reseal(blob)
    assert crypto.key_id_for(resealed) == crypto.current_key_id() != crypto.key_id_for(blob)
    settings.FIELD_ENCRYPTION_KEYS = [new]
    assert crypto.open_sealed(resealed) == b"old secret"
    with pytest.raises(crypto.DecryptionError, match="not configured"):
        crypto.open_sealed(blob)
