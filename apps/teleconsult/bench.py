"""The signalling benchmark (`manage.py bench_signalling`): one real server, real sockets.

A daphne process (the project's ASGI application, channels-redis) serves `--rooms` video
consultations happening now, each with its patient and its clinician signed in (real session
cookies; the clinician's session passed the second factor). Every room goes through the real
path: both connect, the clinician admits the waiting patient, the call starts. Then each of the
`2 × rooms` clients sends `--messages` `signal` messages to the other side of its room at
`--rate` per second, each carrying its send time; the receiver's clock minus that time is the
relay latency (both ends live in this process, so they share one clock).

Everything seeded is found by its organisation ("Bench signalling") and deleted at the end (and
leftovers of an interrupted run at the start); the audit rows written meanwhile stay (the trail
is append-only). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from apps.accounts.models import Organization, Role, User
from apps.accounts.services import create_signed_in_session
from apps.core.processes import ChildProcess, accepts, free_port
from apps.records.bench import percentile
from apps.records.models import Encounter, Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import Appointment, AppointmentType, Participant

from .models import Consultation
from .services.rooms import room_for_appointment

Progress = Callable[[str], None]

ORGANIZATION_NAME = "Bench signalling"
TYPE_CODE = "bench-signalling-video"
_ASGI = "virtualhospital.asgi:application"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Options:
    rooms: int = 200
    # Each client sends `messages` signals to the other side of its room, `rate` per second: a
    # real call sends a few dozen while it sets up, then one now and then (a camera switched
    # off, a drawing), so this is a busy clinic hour condensed.
    messages: int = 30
    rate: float = 1.0
    payload: int = 300  # bytes of filler per message (an ICE candidate; an SDP is ~3 KB)
    connect_concurrency: int = 20


@dataclass
class Pair:
    room: str
    patient_key: str
    clinician_key: str
    patient_cookie: str
    clinician_cookie: str


@dataclass
class Seeded:
    organization: Organization
    pairs: list[Pair] = field(default_factory=list)
    session_keys: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Seeding and cleaning up


def _users(organization: Organization, tag: str, role: str, count: int) -> list[User]:
    password = make_password(None)
    label = "Patient" if role == Role.PATIENT else "Clinician"
    return User.objects.bulk_create(
        [
            User(
                email=f"bench-signalling-{tag}-{role}-{i}@bench.invalid",
                first_name="Bench",
                last_name=f"{label} {i}",
                role=role,
                organization=organization if role != Role.PATIENT else None,
                password=password,
            )
            for i in range(count)
        ]
    )


def seed(options: Options, progress: Progress) -> Seeded:
    """Per room: a patient and a physician (on the care team), a video appointment now, a room."""
    organization = Organization.objects.create(name=ORGANIZATION_NAME)
    seeded = Seeded(organization)
    tag = secrets.token_hex(4)
    patients = _users(organization, tag, Role.PATIENT, options.rooms)
    clinicians = _users(organization, tag, Role.PHYSICIAN, options.rooms)
    records = Patient.objects.bulk_create(
        [
            Patient(
                user=user,
                organization=organization,
                family_name=f"Bench-{i}",
                given_names="Signalling",
                birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=i * 53 % 20_000),
            )
            for i, user in enumerate(patients)
        ]
    )
    video, _created = AppointmentType.objects.get_or_create(
        code=TYPE_CODE,
        defaults={
            "name": "Bench video",
            "minutes": 60,
            "mode": "video",
            "professions": [Role.PHYSICIAN],
            "patient_bookable": False,
        },
    )
    starts = timezone.now() - dt.timedelta(minutes=5)
    ends = starts + dt.timedelta(minutes=60)
    appointments = Appointment.objects.bulk_create(
        [
            Appointment(patient=record, type=video, starts_at=starts, ends_at=ends, mode="video")
            for record in records
        ]
    )
    Participant.objects.bulk_create(
        [
            Participant(appointment=appointment, user=clinician, starts_at=starts, ends_at=ends)
            for appointment, clinician in zip(appointments, clinicians, strict=True)
        ]
    )
    for index, (record, clinician, patient, appointment) in enumerate(
        zip(records, clinicians, patients, appointments, strict=True)
    ):
        do_add_member(default_team(record), clinician)
        consultation = room_for_appointment(appointment)
        device = TOTPDevice.objects.create(user=clinician, name="bench", confirmed=True)
        patient_session, clinician_session = (
            create_signed_in_session(patient),
            create_signed_in_session(clinician, device),
        )
        seeded.session_keys += [patient_session, clinician_session]
        cookie = settings.SESSION_COOKIE_NAME
        seeded.pairs.append(
            Pair(
                room=consultation.room,
                patient_key=f"u{patient.pk}",
                clinician_key=f"u{clinician.pk}",
                patient_cookie=f"{cookie}={patient_session}",
                clinician_cookie=f"{cookie}={clinician_session}",
            )
        )
        if (index + 1) % 50 == 0:
            progress(f"{index + 1}/{options.rooms} rooms seeded")
    return seeded


def clean_up(organization_ids: list[int], session_keys: list[str]) -> None:
    """Delete the bench's rows: patients (their rooms, appointments, encounters), users."""
    patients = Patient.objects.filter(organization_id__in=organization_ids)
    Consultation.objects.filter(patient__in=patients).delete()
    Encounter.objects.filter(patient__in=patients).delete()
    Appointment.objects.filter(patient__in=patients).delete()
    patients.delete()
    users = User.objects.filter(email__startswith="bench-signalling-", email__endswith=".invalid")
    Session.objects.filter(session_key__in=session_keys).delete()
    users.delete()
    Organization.objects.filter(pk__in=organization_ids).delete()
    AppointmentType.objects.filter(code=TYPE_CODE).delete()


def clean_leftovers() -> None:
    """What an interrupted run left behind (its sessions expire by themselves)."""
    leftovers = list(
        Organization.objects.filter(name=ORGANIZATION_NAME).values_list("pk", flat=True)
    )
    if leftovers:
        clean_up(leftovers, [])


# ---------------------------------------------------------------------------------------------
# The server


class Server(ChildProcess):
    """daphne in a child process; the last lines of its output are kept for error reports."""

    def __init__(self, port: int) -> None:
        self.port = port
        daphne = os.path.join(os.path.dirname(sys.executable), "daphne")
        super().__init__([daphne, "-v", "0", "-b", "127.0.0.1", "-p", str(port), _ASGI])

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not accepts(self.port):
            if self.proc.poll() is not None:
                raise BenchError("daphne exited:\n" + self.output()[-3000:])
            if time.monotonic() > deadline:
                raise BenchError("daphne did not listen within a minute:\n" + self.output()[-3000:])
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# The clients


@dataclass
class Tally:
    relay_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


class Client:
    """One browser of the benchmark: its socket and a reader that times relayed signals."""

    def __init__(self, tally: Tally, key: str) -> None:
        self.tally = tally
        self.key = key
        self.ws: ClientConnection | None = None
        self.received = 0
        self.admitted = asyncio.Event()
        self.peer_admitted = asyncio.Event()
        self.done = asyncio.Event()
        self.expected = 0
        self.finished = False

    async def open(self, port: int, room: str, cookie: str) -> None:
        started = time.perf_counter()
        self.ws = await connect(
            f"ws://127.0.0.1:{port}/ws/consult/{room}/",
            origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
            proxy=None,
            compression=None,
            open_timeout=120,
            ping_interval=None,
        )
        welcome = json.loads(await self.ws.recv())
        if welcome.get("type") != "welcome":
            raise BenchError(f"expected a welcome, got {welcome}")
        self.tally.connect_ms.append((time.perf_counter() - started) * 1000)
        if welcome["you"]["admitted"]:
            self.admitted.set()

    async def read(self) -> None:
        assert self.ws is not None  # noqa: S101 - opened before
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "signal":
                    sent = message["data"]["t"]
                    self.tally.relay_ms.append((time.perf_counter() - sent) * 1000)
                    self.received += 1
                    if self.received >= self.expected > 0:
                        self.done.set()
                elif kind == "admitted":
                    self.admitted.set()
                elif kind == "peer.admitted":
                    self.peer_admitted.set()
                elif kind == "error":
                    self.tally.error(f"{self.key}: {message}")
        except ConnectionClosed as closed:
            if not self.finished:
                self.tally.error(f"{self.key}: closed {closed.rcvd}")

    async def send_signals(self, to: str, options: Options) -> None:
        assert self.ws is not None  # noqa: S101 - opened before
        filler = "c" * options.payload
        interval = 1 / options.rate
        start = time.perf_counter() + random.random() * interval  # noqa: S311 - spreading only
        for seq in range(options.messages):
            delay = start + seq * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            data = {"t": time.perf_counter(), "seq": seq, "candidate": filler}
            try:
                await self.ws.send(json.dumps({"type": "signal", "to": to, "data": data}))
            except ConnectionClosed:
                return  # counted by the reader

    async def close(self) -> None:
        self.finished = True
        if self.ws is not None:
            await self.ws.close()


def _layer_name() -> str:
    layers: dict[str, Any] = settings.CHANNEL_LAYERS
    return str(layers["default"]["BACKEND"]).rsplit(".", 1)[-1]


def _wait_live(seeded: Seeded, expected: int, seconds: float = 120) -> int:
    """The number of the bench's consultations in progress, once it reaches `expected`."""
    rooms = [pair.room for pair in seeded.pairs]
    deadline = time.monotonic() + seconds
    try:
        while True:
            live = Consultation.objects.filter(
                room__in=rooms, status=Consultation.Status.LIVE
            ).count()
            if live >= expected or time.monotonic() > deadline:
                return live
            time.sleep(0.2)
    finally:
        connection.close()  # this thread's own connection


async def drive(seeded: Seeded, options: Options, port: int, progress: Progress) -> Tally:
    """Connect every room, admit every patient, then relay and time the signals."""
    tally = Tally()
    gate = asyncio.Semaphore(options.connect_concurrency)
    clients: list[tuple[Client, Client]] = []

    async def enter(pair: Pair) -> tuple[Client, Client] | None:
        clinician = Client(tally, pair.clinician_key)
        patient = Client(tally, pair.patient_key)
        async with gate:
            try:
                await clinician.open(port, pair.room, pair.clinician_cookie)
                await patient.open(port, pair.room, pair.patient_cookie)
            except (OSError, ConnectionClosed, BenchError, TimeoutError) as exc:
                tally.error(f"{pair.room}: cannot connect: {exc!r}")
                await clinician.close()
                await patient.close()
                return None
        return clinician, patient

    entered = await asyncio.gather(*(enter(pair) for pair in seeded.pairs))
    pairs = [(pair, e) for pair, e in zip(seeded.pairs, entered, strict=True) if e is not None]
    progress(f"{2 * len(pairs)} clients connected")
    readers = []
    for pair, (clinician, patient) in pairs:
        clinician.expected = patient.expected = options.messages
        readers += [asyncio.create_task(c.read()) for c in (clinician, patient)]
        assert clinician.ws is not None  # noqa: S101 - opened
        await clinician.ws.send(json.dumps({"type": "admit", "key": pair.patient_key}))
        clients.append((clinician, patient))
    try:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(p.admitted.wait() for _c, p in clients)), timeout=60
            )
        except TimeoutError:
            for _clinician, patient in clients:
                if not patient.admitted.is_set():
                    tally.error(f"{patient.key}: never admitted")
        clients = [(c, p) for c, p in clients if p.admitted.is_set()]
        progress(f"{len(clients)} patients admitted")
        # Each admission starts a call (a transaction opening the Encounter): measure the
        # relay once the server is done with them, as in a clinic where calls start one by one.
        live = await asyncio.to_thread(_wait_live, seeded, len(clients))
        progress(f"{live} calls started; relaying")
        await asyncio.gather(
            *(
                sender.send_signals(receiver.key, options)
                for clinician, patient in clients
                for sender, receiver in ((clinician, patient), (patient, clinician))
            )
        )
        waiting = [c.done.wait() for duo in clients for c in duo]
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), timeout=30)
        except TimeoutError:
            pass
        for duo in clients:
            for c in duo:
                if c.received < options.messages:
                    tally.error(f"{c.key}: {options.messages - c.received} signals never arrived")
    finally:
        for duo in clients:
            for c in duo:
                await c.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return tally


# ---------------------------------------------------------------------------------------------
# The run


def run(options: Options, progress: Progress) -> dict[str, Any]:
    """The whole benchmark; the figures as one dict (see the module docstring)."""
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        raise BenchError("the benchmark needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    clean_leftovers()
    seeded: Seeded | None = None
    server: Server | None = None
    try:
        seeded = seed(options, progress)
        progress(f"seeded {options.rooms} rooms")
        server = Server(free_port())
        server.wait_ready()
        progress(f"daphne (pid {server.proc.pid}) on 127.0.0.1:{server.port}")
        started = time.perf_counter()
        tally = asyncio.run(drive(seeded, options, server.port, progress))
        seconds = time.perf_counter() - started
        for sample in tally.error_samples:
            progress(f"error: {sample}")
        if tally.errors:
            progress("the server's last words:\n" + server.output())
        relay = sorted(tally.relay_ms)
        connects = sorted(tally.connect_ms)
        return {
            "rooms": options.rooms,
            "clients": len(connects),
            "messages": len(relay),
            "relay_p50_ms": round(percentile(relay, 50), 2) if relay else None,
            "relay_p99_ms": round(percentile(relay, 99), 2) if relay else None,
            "relay_max_ms": round(relay[-1], 2) if relay else None,
            "connect_p50_ms": round(percentile(connects, 50), 1) if connects else None,
            "connect_p99_ms": round(percentile(connects, 99), 1) if connects else None,
            "errors": tally.errors,
            "server_rss_mb": round(server.rss_mb(), 1),
            "rate_per_client": options.rate,
            "payload_bytes": options.payload,
            "seconds": round(seconds, 1),
            "cpus": os.cpu_count(),
            "channel_layer": _layer_name(),
        }
    finally:
        if server is not None:
            server.stop()
        if seeded is not None:
            clean_up([seeded.organization.pk], seeded.session_keys)
            progress("bench rows deleted")
