"""`manage.py mosquitto_passwords --out FILE`: Mosquitto credentials for every active device.

Each active device gets a line `<device_id>:<hash of its secret>` in mosquitto_passwd's
PBKDF2-SHA512 format (`$7$<iterations>$<base64 salt>$<base64 hash>`), so a device logs in to
the broker with its id and secret and the ACL (`pattern write vh/devices/%u/obs`) confines it
to its own topic. Retired devices are left out. Reload Mosquitto (SIGHUP) after writing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.models import Device

# mosquitto_passwd's defaults (Mosquitto 2.0): 101 rounds of PBKDF2-HMAC-SHA512, 12-byte salt,
# 64-byte hash. Device secrets are 256 random bits, so more rounds would add no protection.
ITERATIONS = 101
SALT_BYTES = 12


def mosquitto_hash(
    password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None
) -> str:
    """A password hash Mosquitto's password_file accepts ($7$ = PBKDF2-SHA512)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "$7${}${}${}".format(
        iterations, base64.b64encode(salt).decode("ascii"), base64.b64encode(digest).decode("ascii")
    )


def _write_atomically(path: Path, text: str) -> None:
    """Readers (Mosquitto reloading) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o640)  # secrets' hashes: not world-readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Write a Mosquitto password file: one user per active device (id / secret)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="the password file to write")
        parser.add_argument("--ingestor-user", default="", help="also add the ingestor's user")
        parser.add_argument(
            "--ingestor-password-file", default="", help="file holding the ingestor's password"
        )
        parser.add_argument("--iterations", type=int, default=ITERATIONS, help="PBKDF2 rounds")

    def handle(self, *args: Any, **options: Any) -> None:
        user, password_file = options["ingestor_user"], options["ingestor_password_file"]
        if bool(user) != bool(password_file):
            raise CommandError("--ingestor-user and --ingestor-password-file go together")
        if options["iterations"] < 1:
            raise CommandError("--iterations must be positive")
        lines = []
        if user:
            if ":" in user:
                raise CommandError("--ingestor-user cannot contain ':'")
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CommandError(f"cannot read {password_file}: {exc}") from None
            if not password:
                raise CommandError(f"{password_file} is empty")
            lines.append(f"{user}:{mosquitto_hash(password, iterations=options['iterations'])}")
        devices = Device.objects.filter(status=Device.Status.ACTIVE).order_by("device_id")
        count = 0
        for device in devices.iterator():
            digest = mosquitto_hash(device.secret, iterations=options["iterations"])
            lines.append(f"{device.device_id}:{digest}")
            count += 1
        _write_atomically(Path(options["out"]), "".join(f"{line}\n" for line in lines))
        self.stdout.write(
            f"Wrote {count} device users"
            + (f" and {user!r}" if user else "")
            + f" to {options['out']}"
        )
