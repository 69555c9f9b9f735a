"""The ingestion benchmark (`manage.py bench_ingest`): real broker, real ingestors, real sockets.

Phase A (throughput): every message is signed before the clock starts, then published with
QoS 1 as fast as the ingestors take them (at most `max_backlog` published and not yet stored,
so the broker's per-session queue never overflows); the clock runs from the first publish to
the moment PostgreSQL holds every reading. The same number of Observation rows is then copied
with COPY into a scratch table: the ceiling the ingestion is compared with.

Phase B (alert latency): a real ASGI server (daphne) and a WebSocket client signed in as the
bench clinician; readings are published at a fixed rate, those of the patients with a rule
alternating between normal and abnormal (so each rule re-arms and fires again); the latency
of an alert is from the publish of its reading to the `monitoring.alert` event on the socket.

Everything seeded is found by its organisation (named "Bench", patients "Bench-…") and deleted
at the end unless kept; the audit rows written meanwhile stay (the trail is append-only).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.db.models import Max, Min
from django_otp.plugins.otp_totp.models import TOTPDevice
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.accounts.models import Organization, Role, User
from apps.accounts.services import create_signed_in_session
from apps.core import presence
from apps.core.processes import ChildProcess, accepts, child_env, free_port, wait_for
from apps.records.bench import percentile
from apps.records.models import Observation, Patient
from apps.records.reference import load_reference_data
from apps.records.services.care_team import default_team, do_add_member

from .models import Alert, DeadLetter, Device, DeviceMessage, ThresholdRule
from .mqtt import parse_broker_url
from .protocol import encode_reading
from .services.registry import do_register_device

Progress = Callable[[str], None]

ORGANIZATION_NAME = "Bench"
FAMILY_PREFIX = "Bench-"
PULSE = "8867-4"  # heart rate, /min
RULE_LIMIT = 120  # phase A values stay in 60-99; phase B alternates 70 and 150
RULE_EVERY = 10  # one patient in ten has a rule
NORMAL, ABNORMAL = 70, 150
_BATCH_LINE = re.compile(
    rb"batch messages=(\d+) stored_messages=(\d+) readings=(\d+) duplicates=(\d+) "
    rb"dead_lettered=(\d+)"
)


@dataclass(frozen=True)
class Options:
    readings: int = 200_000
    devices: int = 500
    readings_per_message: int = 1
    ingestors: int = 2
    batch_size: int = 500
    alert_rate: int = 1000
    alert_seconds: float = 20
    max_backlog: int = 1800
    keep: bool = False


@dataclass
class Seeded:
    organization: Organization
    clinician: User
    session_key: str = ""
    patients: list[int] = field(default_factory=list)
    devices: list[tuple[Device, str]] = field(default_factory=list)
    rule_patients: set[int] = field(default_factory=set)


# ---------------------------------------------------------------------------------------------
# Seeding and cleaning up


def seed(options: Options, progress: Progress) -> Seeded:
    """Patients (one device each), a clinician on every care team, rules on one in ten."""
    load_reference_data()
    organization = Organization.objects.create(name=ORGANIZATION_NAME)
    clinician = User.objects.create_user(
        email=f"bench-{secrets.token_hex(6)}@bench.invalid",
        first_name="Bench",
        last_name="Physician",
        role=Role.PHYSICIAN,
        organization=organization,
    )
    seeded = Seeded(organization, clinician)
    Patient.objects.bulk_create(
        [
            Patient(
                organization=seeded.organization,
                family_name=f"{FAMILY_PREFIX}{i}",
                given_names="Bench",
                birth_date=dt.date(1940, 1, 1) + dt.timedelta(days=i * 37 % 20_000),
            )
            for i in range(options.devices)
        ]
    )
    patients = list(Patient.objects.filter(organization=seeded.organization).order_by("pk"))
    seeded.patients = [p.pk for p in patients]
    for index, patient in enumerate(patients):
        do_add_member(default_team(patient), clinician)
        seeded.devices.append(do_register_device("heart_rate_patch", patient, None))
        if (index + 1) % 100 == 0:
            progress(f"{index + 1}/{len(patients)} patients with a device and a care team")
    rule_patients = seeded.patients[::RULE_EVERY]
    ThresholdRule.objects.bulk_create(
        [
            ThresholdRule(
                patient_id=pk,
                code=PULSE,
                kind=ThresholdRule.Kind.ABOVE,
                limit=RULE_LIMIT,
                hysteresis=5,
                severity="warning",
            )
            for pk in rule_patients
        ]
    )
    seeded.rule_patients = set(rule_patients)
    seeded.session_key = _verified_session(clinician)
    return seeded


def _verified_session(user: User) -> str:
    """A session signed in as `user` that passed the second factor (as after a TOTP login)."""
    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    return create_signed_in_session(user, device)


def clean_up(seeded: Seeded) -> None:
    """Delete what `seed` made and what the run stored (observations with raw SQL: 200k rows)."""
    device_pks = [device.pk for device, _ in seeded.devices]
    DeadLetter.objects.filter(device_ref__in=[d.device_id for d, _ in seeded.devices]).delete()
    Alert.readings.through.objects.filter(alert__patient_id__in=seeded.patients).delete()
    Alert.objects.filter(patient_id__in=seeded.patients).delete()
    Device.objects.filter(pk__in=device_pks).delete()  # their DeviceMessages cascade
    table = connection.ops.quote_name(Observation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE patient_id = ANY(%s)",  # noqa: S608 - table name only
            [seeded.patients],
        )
    Patient.objects.filter(pk__in=seeded.patients).delete()
    if seeded.session_key:
        SessionStore(seeded.session_key).delete()
    User.objects.filter(organization=seeded.organization).delete()
    seeded.organization.delete()


# ---------------------------------------------------------------------------------------------
# Child processes


class Child(ChildProcess):
    """A subprocess whose batch lines are summed as they come (the ingestors report each)."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.done = 0  # messages stored, duplicated or dead-lettered, from the batch lines
        self.counts = [0, 0, 0, 0, 0]
        self.batches = 0
        self.subscribed = threading.Event()
        super().__init__(argv, child_env(LOG_LEVEL="INFO"))

    def on_line(self, line: bytes) -> None:
        match = _BATCH_LINE.search(line)
        if match:
            numbers = [int(n) for n in match.groups()]
            self.counts = [a + b for a, b in zip(self.counts, numbers, strict=True)]
            self.done = self.counts[0]
            self.batches += 1
        elif b"MQTT subscribed" in line:
            self.subscribed.set()


def _manage(*args: str) -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]


def _mqtt_client(client_id: str) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    address = parse_broker_url(settings.MQTT_URL or "")
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    return client


def forget_session(client_id: str) -> None:
    """Remove the broker's persistent session of `client_id` (clean start, expiry 0)."""
    address = parse_broker_url(settings.MQTT_URL or "")
    client = _mqtt_client(client_id)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect(address.host, address.port, clean_start=True, properties=props)
    client.loop_start()
    try:
        wait_for(client.is_connected, 10, f"forgetting MQTT session {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()


# ---------------------------------------------------------------------------------------------
# A minimal WebSocket client (RFC 6455): receives text frames, answers pings, closes


class SocketClient:
    """Reads `monitoring.alert` events in a thread; first receive time per (patient, time)."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.stream = self.sock.makefile("rb")
        status = self.stream.readline()
        if b" 101 " not in status:
            raise RuntimeError(f"WebSocket handshake refused: {status!r}")
        while self.stream.readline() not in (b"\r\n", b""):
            pass
        self.sock.settimeout(None)
        self.alerts: dict[tuple[int, dt.datetime], float] = {}
        self.events = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _frame(self) -> tuple[bool, int, bytes]:
        head = self.stream.read(2)
        if len(head) < 2:
            return True, 8, b""
        fin, opcode, length = bool(head[0] & 0x80), head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self.stream.read(2), "big")
        elif length == 127:
            length = int.from_bytes(self.stream.read(8), "big")
        return fin, opcode, self.stream.read(length)  # a server never masks

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def _receive(self) -> None:
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._frame()
            received = time.perf_counter()
            if opcode == 8:
                return
            if opcode == 9:
                self._send(10, payload[:125])
                continue
            if opcode in (0, 1):
                parts.append(payload)
                if not fin:
                    continue
                event = json.loads(b"".join(parts))
                parts = []
                self.events += 1
                if event.get("type") == "monitoring.alert":
                    at = dt.datetime.fromisoformat(event["measured_at"])
                    with self._lock:
                        self.alerts.setdefault((event["patient"], at), received)

    def received(self, key: tuple[int, dt.datetime]) -> float | None:
        with self._lock:
            return self.alerts.get(key)

    def close(self) -> None:
        try:
            self._send(8, (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self._thread.join(timeout=5)
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The run


class BenchError(RuntimeError):
    pass


def _publisher(client_id: str) -> mqtt.Client:
    """A clean-start client (its session ends with the connection) with a deep window."""
    address = parse_broker_url(settings.MQTT_URL or "")
    client = _mqtt_client(client_id)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port, clean_start=True)
    client.loop_start()
    wait_for(client.is_connected, 10, "connecting the publisher")
    return client


def encode_throughput_messages(
    seeded: Seeded, options: Options, progress: Progress
) -> list[tuple[str, bytes]]:
    """Phase A's signed messages, round robin over the devices, times in the last hour."""
    total = options.readings // options.readings_per_message
    base = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    devices = seeded.devices
    messages = []
    for i in range(total):
        device, secret = devices[i % len(devices)]
        readings = [(PULSE, 60 + (i + j) % 40, "/min") for j in range(options.readings_per_message)]
        ts = base + dt.timedelta(milliseconds=i)
        messages.append(encode_reading(device.device_id, secret, readings, ts, msg_id=f"m{i}"))
        if (i + 1) % 50_000 == 0:
            progress(f"{i + 1}/{total} messages signed")
    return messages


def _stored_messages(seeded: Seeded) -> int:
    return DeviceMessage.objects.filter(device__in=[d.pk for d, _ in seeded.devices]).count()


def _wait_ingested(ingestors: list[Child], total: int, stall_s: float = 60) -> bool:
    """Until the ingestors' batch lines account for `total` messages; False on a stall."""
    last, since = -1, time.monotonic()
    while (done := sum(c.done for c in ingestors)) < total:
        if done != last:
            last, since = done, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return False
        if any(c.proc.poll() is not None for c in ingestors):
            raise BenchError("an ingestor exited:\n" + _outputs(ingestors))
        time.sleep(0.002)
    return True


def _outputs(children: list[Child]) -> str:
    return "\n".join(f"--- {c.name}\n{c.output()[-3000:]}" for c in children)


def throughput(
    seeded: Seeded,
    options: Options,
    messages: list[tuple[str, bytes]],
    publisher: mqtt.Client,
    ingestors: list[Child],
    progress: Progress,
) -> float:
    """Publish every message (bounded backlog); seconds until the database holds them all."""
    total = len(messages)
    backlog = options.max_backlog
    started = time.perf_counter()
    sent = 0
    last_report = started
    while sent < total:
        room = backlog - (sent - sum(c.done for c in ingestors))
        if room <= 0:
            time.sleep(0.0005)
            continue
        end = min(total, sent + min(room, 500))
        for topic, payload in messages[sent:end]:
            publisher.publish(topic, payload, qos=1)
        sent = end
        if time.perf_counter() - last_report > 5:
            last_report = time.perf_counter()
            progress(f"{sent}/{total} published, {sum(c.done for c in ingestors)} stored")
    if not _wait_ingested(ingestors, total):
        progress(f"throughput phase: stalled at {sum(c.done for c in ingestors)}/{total}")
    # The batch lines come after each commit; the database has the last word.
    deadline = time.monotonic() + 30
    while _stored_messages(seeded) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    return time.perf_counter() - started


def copy_ceiling(seeded: Seeded) -> tuple[float, int]:
    """Rows per second of a raw COPY of the stored readings into a scratch twin of the table."""
    table = connection.ops.quote_name(Observation._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(f.column)
        for f in Observation._meta.concrete_fields
        if not f.primary_key
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {table} WHERE device_id = ANY(%s)",  # noqa: S608
            [[device.device_id for device, _ in seeded.devices]],
        )
        rows = cursor.fetchall()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_copy "
            f"(LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES) "
            "ON COMMIT DROP"
        )
        started = time.perf_counter()
        with cursor.cursor.copy(f"COPY bench_copy ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed, len(rows)


def alert_latency(
    seeded: Seeded, options: Options, port: int, publisher: mqtt.Client, progress: Progress
) -> tuple[list[float], int, int]:
    """Latencies (ms) of the alerts, how many never arrived, and the messages published."""
    clinician = seeded.clinician.pk
    cookie = f"{settings.SESSION_COOKIE_NAME}={seeded.session_key}"
    client = SocketClient(port, "/ws/notifications/", cookie)
    try:
        wait_for(lambda: clinician in presence.online([clinician]), 10, "the socket's presence")
        total = int(options.alert_rate * options.alert_seconds)
        abnormal_next = dict.fromkeys(seeded.rule_patients, True)
        sent: dict[tuple[int, dt.datetime], float] = {}
        devices = seeded.devices
        started = time.perf_counter()
        for i in range(total):
            delay = started + i / options.alert_rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            device, secret = devices[i % len(devices)]
            patient = seeded.patients[i % len(devices)]  # devices[k] is patients[k]'s
            alerting = abnormal_next.get(patient, False)
            if patient in abnormal_next:
                abnormal_next[patient] = not alerting
            ts = dt.datetime.now(dt.UTC)
            value = ABNORMAL if alerting else NORMAL
            topic, payload = encode_reading(
                device.device_id, secret, [(PULSE, value, "/min")], ts, msg_id=f"a{i}"
            )
            if alerting:
                sent[(patient, ts)] = time.perf_counter()
            publisher.publish(topic, payload, qos=1)
        progress(f"{total} readings published at {options.alert_rate}/s, {len(sent)} alerting")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(client.received(k) is None for k in sent):
            time.sleep(0.05)
        latencies = []
        for key, at in sent.items():
            received = client.received(key)
            if received is not None:
                latencies.append((received - at) * 1000)
        return sorted(latencies), len(sent) - len(latencies), total
    finally:
        client.close()


def _losses(seeded: Seeded, expected_readings: int, prefix: str) -> tuple[int, int, int]:
    """Readings lost, readings stored more than once, dead letters (messages `prefix`…)."""
    device_pks = [device.pk for device, _ in seeded.devices]
    device_ids = [device.device_id for device, _ in seeded.devices]
    messages = DeviceMessage.objects.filter(device__in=device_pks, message_id__startswith=prefix)
    readings = sum(messages.values_list("readings", flat=True))
    # Observations do not name their message: those of the phase are the ones measured in it.
    span = messages.aggregate(first=Min("measured_at"), last=Max("measured_at"))
    observations = Observation.objects.filter(
        device_id__in=device_ids,
        effective_at__gte=span["first"] or dt.datetime.max.replace(tzinfo=dt.UTC),
        effective_at__lte=span["last"] or dt.datetime.min.replace(tzinfo=dt.UTC),
    ).count()
    dead = DeadLetter.objects.filter(device_ref__in=device_ids).count()
    return max(0, expected_readings - readings), max(0, observations - readings), dead


def run(options: Options, progress: Progress) -> dict[str, Any]:
    """The whole benchmark; the figures as one dict (see the module docstring)."""
    if not settings.MQTT_URL:
        raise BenchError("MQTT_URL is not set; set it to the broker, e.g. mqtt://127.0.0.1:1883")
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        raise BenchError("the benchmark needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    if options.readings % options.readings_per_message:
        raise BenchError("--readings must be a multiple of --readings-per-message")
    run_id = uuid.uuid4().hex[:8]
    group = f"bench-{run_id}"
    client_ids = [f"bench-{run_id}-{i}" for i in range(options.ingestors)]
    port = free_port()
    daphne = str(os.path.join(os.path.dirname(sys.executable), "daphne"))
    server = Child("daphne", [daphne, "-b", "127.0.0.1", "-p", str(port), _ASGI])
    ingestors = [
        Child(
            client_id,
            _manage(
                "ingest_mqtt",
                *("--client-id", client_id, "--group", group),
                *("--batch-size", str(options.batch_size)),
            ),
        )
        for client_id in client_ids
    ]
    seeded: Seeded | None = None
    publisher: mqtt.Client | None = None
    try:
        seeded = seed(options, progress)
        progress(f"seeded {len(seeded.patients)} patients, devices and care teams")
        messages = encode_throughput_messages(seeded, options, progress)
        for child in ingestors:
            if not child.subscribed.wait(60):
                raise BenchError("an ingestor did not subscribe:\n" + _outputs([child]))
        wait_for(lambda: accepts(port), 60, "starting daphne")
        publisher = _publisher(f"bench-pub-{run_id}")

        progress(f"phase A: {len(messages)} messages, {options.readings} readings")
        seconds = throughput(seeded, options, messages, publisher, ingestors, progress)
        readings_per_s = options.readings / seconds
        progress(f"phase A: {seconds:.1f} s, {readings_per_s:.0f} readings/s")
        copy_rows_per_s, copied = copy_ceiling(seeded)
        progress(f"COPY of {copied} rows: {copy_rows_per_s:.0f} rows/s")

        progress(f"phase B: {options.alert_rate} readings/s for {options.alert_seconds} s")
        latencies, missed, alert_messages = alert_latency(
            seeded, options, port, publisher, progress
        )
        lost, duplicated, _dead = _losses(seeded, options.readings, "m")
        # Past what the ingestors keep up with, the broker's per-session queue overflows
        # (Mosquitto's max_queued_messages) and drops messages: counted apart.
        if not _wait_ingested(ingestors, len(messages) + alert_messages, stall_s=15):
            progress("alert phase: some messages never reached an ingestor")
        alert_lost, alert_duplicated, alert_dead = _losses(seeded, alert_messages, "a")
        rss = max(child.rss_mb() for child in ingestors)
        result: dict[str, Any] = {
            "readings": options.readings,
            "messages": len(messages),
            "devices": options.devices,
            "readings_per_message": options.readings_per_message,
            "ingestors": options.ingestors,
            "seconds": round(seconds, 2),
            "readings_per_s": round(readings_per_s),
            "copy_rows_per_s": round(copy_rows_per_s),
            "ratio": round(copy_rows_per_s / readings_per_s, 2),
            "lost": lost,
            "duplicated": duplicated,
            "dead_lettered": alert_dead,
            "alert_rate": options.alert_rate,
            "alert_phase_lost": alert_lost,
            "alert_phase_duplicated": alert_duplicated,
            "alerts": len(latencies),
            "alerts_missed": missed,
            "alert_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
            "alert_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
            "alert_max_ms": round(latencies[-1], 1) if latencies else None,
            "ingestor_rss_mb": round(rss, 1),
            "batches": sum(c.batches for c in ingestors),
            "cpus": os.cpu_count(),
        }
        if options.keep:
            result["kept"] = {"organization": seeded.organization.pk}
        return result
    finally:
        if publisher is not None:
            publisher.disconnect()
            publisher.loop_stop()
        for child in [*ingestors, server]:
            code = child.stop()
            if code not in (0, None) and child is not server:
                progress(f"{child.name} exited with {code}:\n{child.output()[-2000:]}")
        for client_id in client_ids:
            forget_session(client_id)
        if seeded is not None and not options.keep:
            clean_up(seeded)
            progress("bench rows deleted")


_ASGI = "virtualhospital.asgi:application"
