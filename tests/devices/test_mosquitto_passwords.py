"""`manage.py mosquitto_passwords`: a password file Mosquitto accepts; the ACL confines devices."""

from __future__ import annotations

import base64
import getpass
import hashlib
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from django.core.management import call_command

from apps.core.processes import free_port
from apps.devices.models import Device
from apps.devices.protocol import encode_reading
from apps.devices.services.registry import do_register_device, do_retire_device
from apps.records.models import Patient

from .conftest import BP
from .test_mqtt_ingest import wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
LINE = re.compile(
    r"^(?P<user>[^:]+):\$7\$(?P<iterations>\d+)\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<hash>[A-Za-z0-9+/=]+)$"
)


def _entries(path: Path) -> dict[str, re.Match[str]]:
    matches = [LINE.match(line) for line in path.read_text().splitlines()]
    assert all(matches), path.read_text()
    return {m["user"]: m for m in matches if m}


def _verifies(entry: re.Match[str], password: str) -> bool:
    salt = base64.b64decode(entry["salt"])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(entry["iterations"]))
    return base64.b64encode(digest).decode() == entry["hash"]


@pytest.fixture
def devices(reference: None, record: Patient) -> tuple[tuple[Device, str], tuple[Device, str]]:
    first = do_register_device("blood_pressure", record, None)
    second = do_register_device("scale", record, None)
    return first, second


INGESTOR_PASSWORD = "ingest-pw-0123"


def _write(tmp_path: Path, ingestor_password: str = INGESTOR_PASSWORD) -> Path:
    secret_file = tmp_path / "ingestor-password"
    secret_file.write_text(ingestor_password + "\n")
    out = tmp_path / "passwd"
    call_command(
        "mosquitto_passwords",
        f"--out={out}",
        "--ingestor-user=vh-ingest",
        f"--ingestor-password-file={secret_file}",
        stdout=open("/dev/null", "w"),  # noqa: SIM115
    )
    return out


def test_the_file_holds_pbkdf2_sha512_hashes_of_active_devices_only(
    tmp_path: Path, devices: Any
) -> None:
    # given two devices, one of them retired
    (first, first_secret), (second, _) = devices
    do_retire_device(second, None)

    # when the password file is written
    out = _write(tmp_path)

    # then it has the ingestor and the active device, in mosquitto_passwd's $7$ format
    entries = _entries(out)
    assert set(entries) == {"vh-ingest", first.device_id}
    entry = entries[first.device_id]
    assert entry["iterations"] == "101"
    assert len(base64.b64decode(entry["salt"])) == 12
    assert len(base64.b64decode(entry["hash"])) == 64
    assert _verifies(entry, first_secret)
    assert not _verifies(entry, first_secret + "x")
    assert _verifies(entries["vh-ingest"], "ingest-pw-0123")
    assert out.stat().st_mode & 0o077 == 0o040  # group-readable (mosquitto), not world


def _test_config(tmp_path: Path, port: int, passwd: Path) -> Path:
    """The production config with the TLS listener made plain and paths moved to `tmp_path`."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        if key in ("certfile", "keyfile", "cafile", "tls_version", "require_certificate"):
            continue  # no certificates in the test: the same listener without TLS
        if key == "listener":
            line = f"listener {port} 127.0.0.1"
        line = line.replace("/var/lib/mosquitto/", f"{tmp_path}/")
        line = line.replace("/etc/mosquitto/passwd", str(passwd))
        line = line.replace("/etc/mosquitto/acl", str(DEPLOY / "acl"))
        lines.append(line)
    # Run as whoever runs the tests (as root, Mosquitto would switch to a user who cannot
    # read the 0640 password file under tmp_path).
    lines.append(f"user {getpass.getuser()}")
    config = tmp_path / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture
def broker(tmp_path: Path, devices: Any) -> Iterator[tuple[int, Path]]:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    # Mosquitto is one of the machine's services (docs/devices.md): without it, this fails.
    assert binary is not None, "no mosquitto binary: install Debian's mosquitto"
    passwd = _write(tmp_path)
    port = free_port()
    log = tmp_path / "mosquitto.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [binary, "-c", str(_test_config(tmp_path, port, passwd))],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening() -> bool:
            assert proc.poll() is None, log.read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 10, log.read_text)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(port: int, user: str, password: str) -> tuple[mqtt.Client, Any]:
    """A connected (or refused) MQTT v5 client and the CONNACK reason code."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(user, password)
    result: dict[str, Any] = {}
    client.on_connect = lambda c, u, flags, reason, props: result.setdefault("reason", reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_for(lambda: "reason" in result, 10)
    return client, result["reason"]


def test_mosquitto_accepts_devices_and_confines_them_to_their_topic(
    broker: tuple[int, Path], devices: Any
) -> None:
    port, log = broker
    (first, first_secret), (second, second_secret) = devices
    # given the ingestor subscribed through the shared subscription
    ingestor, reason = _client(port, "vh-ingest", "ingest-pw-0123")
    assert not reason.is_failure
    received: list[str] = []
    subscribed: list[Any] = []
    ingestor.on_message = lambda c, u, msg: received.append(msg.topic)
    ingestor.on_subscribe = lambda c, u, mid, reasons, props: subscribed.extend(reasons)
    ingestor.subscribe("$share/vh-ingest/vh/devices/+/obs", qos=1)
    wait_for(lambda: bool(subscribed), 10)
    assert not subscribed[0].is_failure

    # a wrong password is refused
    refused, reason = _client(port, first.device_id, second_secret)
    assert reason.is_failure
    refused.loop_stop()

    # when the first device publishes to its own topic and to the second device's
    device, reason = _client(port, first.device_id, first_secret)
    assert not reason.is_failure
    acks: dict[int, Any] = {}
    device.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, reason)
    own = device.publish(*encode_reading(first.device_id, first_secret, BP), qos=1)
    other = device.publish(*encode_reading(second.device_id, first_secret, BP), qos=1)
    wait_for(lambda: own.mid in acks and other.mid in acks, 10)

    # then only its own message reaches the ingestor; the other is refused (not authorised)
    wait_for(lambda: received == [first.topic], 10, lambda: received)
    assert acks[other.mid].is_failure and not acks[own.mid].is_failure
    for client in (device, ingestor):
        client.disconnect()
        client.loop_stop()
