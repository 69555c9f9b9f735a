"""The encrypted files of Bulk Data `$export`: where they live, how they are written and read.

A file is a run of blocks, each a 4-byte big-endian length then the block's NDJSON lines sealed
with `apps.core.crypto.seal`, the job, file name and block position as the sealing context (a
block cannot be moved to another job, file or position). A file is written under a temporary
name and renamed to a random storage name once complete and synced.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from apps.core.crypto import current_key_id, open_sealed, seal

from .models import ExportFile

STORAGE_DIR = "exports"
STORAGE_NAME = re.compile(r"^[0-9a-f]{32}\.ndjson\.sealed$")
LENGTH_SIZE = 4


def storage_root() -> Path:
    """Next to the record's encrypted documents (MEDIA_ROOT/records)."""
    return Path(settings.MEDIA_ROOT) / STORAGE_DIR


def storage_path(name: str) -> Path:
    if not STORAGE_NAME.match(name):
        raise ValueError(f"not an export storage name: {name!r}")
    return storage_root() / name


def block_context(job_id: uuid.UUID | str, name: str, block: int) -> bytes:
    """Sealing context: a block cannot be moved to another job, file or position."""
    return f"fhir-export:{job_id}:{name}:{block}".encode()


class SealedFile:
    """One file being written: sealed blocks appended to a temporary file, then published."""

    def __init__(self, root: Path, job_id: uuid.UUID | str, name: str) -> None:
        self.job_id = job_id
        self.name = name
        self.key_id = current_key_id()
        self.blocks = 0
        self.count = 0
        self.size = 0
        fd, self.temporary = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".part")
        self.handle = os.fdopen(fd, "wb")

    def write_block(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        sealed = seal(data, context=block_context(self.job_id, self.name, self.blocks))
        self.handle.write(len(sealed).to_bytes(LENGTH_SIZE, "big"))
        self.handle.write(sealed)
        self.blocks += 1
        self.count += len(lines)
        self.size += len(data)

    def publish(self) -> str:
        """Sync and move the file to a random storage name; that name."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        storage_name = secrets.token_hex(16) + ".ndjson.sealed"
        os.replace(self.temporary, storage_root() / storage_name)
        self.temporary = ""
        return storage_name

    def discard(self) -> None:
        self.handle.close()
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temporary)
            self.temporary = ""


def read_file(export_file: ExportFile) -> Iterator[bytes]:
    """The NDJSON content of a file, decrypted block by block."""
    name = str(export_file)
    with storage_path(export_file.storage_name).open("rb") as handle:
        block = 0
        while header := handle.read(LENGTH_SIZE):
            if len(header) != LENGTH_SIZE:
                raise ValueError(f"export file {name} is truncated")
            sealed = handle.read(int.from_bytes(header, "big"))
            yield open_sealed(sealed, context=block_context(export_file.job_id, name, block))
            block += 1


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        storage_path(name).unlink()


def unlink_all(names: list[str]) -> None:
    for name in names:
        unlink(name)


def sweep_orphans(older_than: dt.datetime) -> None:
    """Files no job names (a worker that died mid-way) once they are older than retention."""
    root = storage_root()
    if not root.is_dir():
        return
    known = set(ExportFile.objects.values_list("storage_name", flat=True))
    cutoff = older_than.timestamp()
    for path in root.iterdir():
        ours = STORAGE_NAME.match(path.name) or (
            path.name.startswith(".tmp-") and path.name.endswith(".part")
        )
        if ours and path.name not in known and path.stat().st_mtime < cutoff:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
