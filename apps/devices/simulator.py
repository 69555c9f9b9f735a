"""Simulated devices for the demo and load tests: realistic, deterministic series of readings.

Each simulated device sends what a real one of its kind would (a blood-pressure monitor:
systolic, diastolic and pulse; an oximeter: SpO2 and pulse; …) around per-patient baselines
derived from the patient (seeded, so a patient's numbers are the same on every run), with a
daily rhythm, Gaussian noise, a slow weight drift, a draining battery, some devices in
non-canonical units (mg/dL, lb, °F) and, on request, rare alarming readings.

The series (`baseline_for`, `DeviceSeries`) are plain Python; `Simulator` paces the messages
(token bucket) and sends them through MQTT (`MqttSender`) or HTTPS (`HttpSender`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet

from apps.records.models import CodeSystem, Condition, Patient

from .models import Device
from .protocol import encode_reading
from .units import GLUCOSE_MG_DL_PER_MMOL_L, KG_PER_LB

logger = logging.getLogger(__name__)

SYSTOLIC, DIASTOLIC, HEART_RATE = "8480-6", "8462-4", "8867-4"
SPO2, WEIGHT, TEMPERATURE, GLUCOSE = "59408-5", "29463-7", "8310-5", "15074-8"

ANOMALY_RATE = 0.015  # share of readings that are alarming when anomalies are on
# Alarm lines (canonical units): a value below the first or above the second is alarming.
# Ordinary readings are kept inside them; anomalies land outside.
ALARM_LINES: dict[str, tuple[float, float]] = {
    SYSTOLIC: (0, 169),
    DIASTOLIC: (0, 99),
    HEART_RATE: (41, 129),
    SPO2: (90, 100),
    GLUCOSE: (3.5, 15),
    TEMPERATURE: (0, 38.9),
}
# Where ordinary readings are clipped: a little inside the alarm lines.
_NORMAL_BANDS: dict[str, tuple[float, float]] = {
    SYSTOLIC: (95, 165),
    DIASTOLIC: (55, 97),
    HEART_RATE: (45, 120),
    SPO2: (91, 100),
    GLUCOSE: (3.9, 14),
    TEMPERATURE: (35.8, 38.2),
}
_LB_PER_KG = 1 / float(KG_PER_LB)
_MG_DL_PER_MMOL_L = float(GLUCOSE_MG_DL_PER_MMOL_L)
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # origin of the slow weight cycle
KINDS = (
    "blood_pressure",
    "glucometer",
    "pulse_oximeter",
    "scale",
    "thermometer",
    "heart_rate_patch",
)
# When a patient measures at home (local hours) in the demo history; the patch streams hourly.
SCHEDULES: dict[str, tuple[float, ...]] = {
    "blood_pressure": (7.5, 19.5),
    "scale": (7.0,),
    "glucometer": (7.75, 11.75, 18.75, 22.0),
    "pulse_oximeter": (8.0, 14.0, 21.0),
    "thermometer": (8.0, 20.0),
    "heart_rate_patch": tuple(float(h) for h in range(24)),
}
MODELS: dict[str, str] = {
    "blood_pressure": "SIM-BP100",
    "glucometer": "SIM-GL200",
    "pulse_oximeter": "SIM-OX300",
    "scale": "SIM-SC400",
    "thermometer": "SIM-TH500",
    "heart_rate_patch": "SIM-HR600",
}


# --- kits --------------------------------------------------------------------------------------


def kit_for_conditions(icd10_codes: Iterable[str]) -> list[str]:
    """The device kinds a patient with these ICD-10 problems is sent home with."""
    codes = [code.upper() for code in icd10_codes]

    def has(*prefixes: str) -> bool:
        return any(code.startswith(prefixes) for code in codes)

    kit: list[str] = []
    if has("I10", "I11", "I12", "I13", "I15", "I50"):  # hypertension, heart failure
        kit += ["blood_pressure", "scale"]
    if has("E10", "E11", "E13", "E14"):  # diabetes
        kit.append("glucometer")
    if has("J44"):  # COPD: oximeter, and a thermometer for exacerbations
        kit += ["pulse_oximeter", "thermometer"]
    if has("I48"):  # atrial fibrillation
        kit.append("heart_rate_patch")
    return kit or ["blood_pressure", "pulse_oximeter"]


# --- series ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A patient's usual values (canonical units) around which the series move."""

    systolic: float
    diastolic: float
    heart_rate: float
    spo2: float
    weight: float
    weight_swing: float  # kg, amplitude of the slow weight cycle
    weight_period: float  # days
    weight_phase: float
    glucose: float  # mmol/L, fasting
    glucose_meal: float  # mmol/L, rise after a meal
    temperature: float


def baseline_for(
    seed: str, *, sex: str = "unknown", age: int = 60, conditions: Iterable[str] = ()
) -> Baseline:
    """Deterministic baseline of one patient (`seed`: a stable id such as the FHIR id)."""
    rng = random.Random(f"baseline:{seed}")  # noqa: S311 - simulation, not security
    codes = [c.upper() for c in conditions]
    hypertensive = any(c.startswith(("I10", "I11", "I12", "I13", "I15")) for c in codes)
    diabetic = any(c.startswith(("E10", "E11", "E13", "E14")) for c in codes)
    copd = any(c.startswith("J44") for c in codes)
    failing_heart = any(c.startswith("I50") for c in codes)
    age_push = max(0, age - 40) * 0.25
    return Baseline(
        systolic=116 + age_push + (14 if hypertensive else 0) + rng.uniform(-5, 7),
        diastolic=74 + age_push / 3 + (7 if hypertensive else 0) + rng.uniform(-4, 4),
        heart_rate=70 + (6 if failing_heart else 0) + rng.uniform(-7, 7),
        spo2=(94.0 if copd else 97.2) + rng.uniform(-0.8, 0.8),
        weight=(64.0 if sex == "female" else 80.0) + rng.uniform(-8, 16),
        weight_swing=rng.uniform(0.6, 1.8) + (1.0 if failing_heart else 0),
        weight_period=rng.uniform(25, 60),
        weight_phase=rng.uniform(0, 2 * math.pi),
        glucose=(7.2 if diabetic else 5.0) + rng.uniform(-0.4, 0.6),
        glucose_meal=(3.6 if diabetic else 1.8) + rng.uniform(-0.3, 0.3),
        temperature=36.7 + rng.uniform(-0.2, 0.2),
    )


def imperial_units(device_id: str) -> bool:
    """Whether a device sends mg/dL, lb and °F (about half of them do, fixed per device)."""
    return hashlib.sha256(device_id.encode()).digest()[0] % 2 == 0


@dataclass(frozen=True)
class Sample:
    at: dt.datetime
    measurements: list[tuple[str, float, str]]  # (LOINC code, value as sent, unit as sent)
    battery: int
    anomalous: bool


def _clip(code: str, value: float) -> float:
    low, high = _NORMAL_BANDS[code]
    return min(max(value, low), high)


def _daily(hour: float, peak: float) -> float:
    """A 24-hour cosine: 1 at `peak` (local hour), -1 twelve hours later."""
    return math.cos(2 * math.pi * (hour - peak) / 24)


class DeviceSeries:
    """The readings of one device over time; same arguments, same series."""

    def __init__(
        self,
        device_id: str,
        kind: str,
        baseline: Baseline,
        *,
        secret: str = "",
        anomalies: bool = False,
        seed: str | int | None = None,
        imperial: bool | None = None,
        battery: float | None = None,
        tz: dt.tzinfo = dt.UTC,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown device kind {kind!r}")
        self.device_id = device_id
        self.kind = kind
        self.baseline = baseline
        self.secret = secret
        self.anomalies = anomalies
        self.rng = random.Random(f"series:{device_id}" if seed is None else seed)  # noqa: S311
        self.imperial = imperial_units(device_id) if imperial is None else imperial
        self.battery = battery if battery is not None else self.rng.uniform(60, 100)
        self.tz = tz

    # values in canonical units ---------------------------------------------------------------

    def _heart_rate(self, hour: float) -> float:
        return self.baseline.heart_rate + 6 * _daily(hour, 15) + self.rng.gauss(0, 4)

    def _blood_pressure(self, hour: float) -> list[tuple[str, float]]:
        b = self.baseline
        surge = _daily(hour, 8)  # morning surge, night dip
        systolic = _clip(SYSTOLIC, b.systolic + 7 * surge + self.rng.gauss(0, 5))
        diastolic = _clip(DIASTOLIC, b.diastolic + 4 * surge + self.rng.gauss(0, 3.5))
        diastolic = min(diastolic, systolic - 25)
        return [
            (SYSTOLIC, systolic),
            (DIASTOLIC, diastolic),
            (HEART_RATE, _clip(HEART_RATE, self._heart_rate(hour))),
        ]

    def _weight(self, at: dt.datetime, hour: float) -> float:
        b = self.baseline
        days = (at - _EPOCH).total_seconds() / 86400
        cycle = b.weight_swing * math.sin(2 * math.pi * days / b.weight_period + b.weight_phase)
        return b.weight + cycle - 0.4 * _daily(hour, 6) + self.rng.gauss(0, 0.2)

    def _glucose(self, hour: float) -> float:
        rise = sum(math.exp(-((hour - meal - 1) ** 2) / (2 * 0.8**2)) for meal in (7.5, 12.5, 19.0))
        value = self.baseline.glucose + self.baseline.glucose_meal * rise
        return _clip(GLUCOSE, value + self.rng.gauss(0, 0.4))

    def _ordinary(self, at: dt.datetime, hour: float) -> list[tuple[str, float]]:
        b = self.baseline
        if self.kind == "blood_pressure":
            return self._blood_pressure(hour)
        if self.kind == "pulse_oximeter":
            spo2 = _clip(SPO2, b.spo2 - 0.4 * _daily(hour, 3) + self.rng.gauss(0, 0.8))
            return [(SPO2, spo2), (HEART_RATE, _clip(HEART_RATE, self._heart_rate(hour)))]
        if self.kind == "scale":
            return [(WEIGHT, self._weight(at, hour))]
        if self.kind == "glucometer":
            return [(GLUCOSE, self._glucose(hour))]
        if self.kind == "thermometer":
            temperature = b.temperature + 0.3 * _daily(hour, 18) + self.rng.gauss(0, 0.12)
            return [(TEMPERATURE, _clip(TEMPERATURE, temperature))]
        return [(HEART_RATE, _clip(HEART_RATE, self._heart_rate(hour)))]

    def _alarming(self, values: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Replace an ordinary reading by one a clinician would want to hear about."""
        rng = self.rng
        out = dict(values)
        if self.kind == "blood_pressure":
            out[SYSTOLIC] = rng.uniform(172, 190)
            out[DIASTOLIC] = rng.uniform(101, 112)
        elif self.kind == "pulse_oximeter":
            out[SPO2] = rng.uniform(85, 88.6)
        elif self.kind == "glucometer":
            out[GLUCOSE] = rng.uniform(2.8, 3.3) if rng.random() < 0.5 else rng.uniform(16, 22)
        elif self.kind == "scale":
            out[WEIGHT] += rng.uniform(2.5, 4)  # sudden fluid gain
        elif self.kind == "thermometer":
            out[TEMPERATURE] = rng.uniform(39.1, 40.2)
        else:
            out[HEART_RATE] = rng.uniform(132, 155) if rng.random() < 0.7 else rng.uniform(34, 39)
        return list(out.items())

    # as the device sends them ----------------------------------------------------------------

    def _as_sent(self, code: str, value: float) -> tuple[str, float, str]:
        if code in (SYSTOLIC, DIASTOLIC, SPO2):
            return code, round(value), "mm[Hg]" if code != SPO2 else "%"
        if code == HEART_RATE:
            return code, round(value), "{beats}/min" if self.kind == "heart_rate_patch" else "/min"
        if code == WEIGHT:
            if self.imperial:
                return code, round(value * _LB_PER_KG, 1), "[lb_av]"
            return code, round(value, 1), "kg"
        if code == GLUCOSE:
            if self.imperial:
                return code, round(value * _MG_DL_PER_MMOL_L), "mg/dL"
            return code, round(value, 1), "mmol/L"
        if self.imperial:  # temperature
            return code, round(value * 9 / 5 + 32, 1), "[degF]"
        return code, round(value, 1), "Cel"

    def sample(self, at: dt.datetime) -> Sample:
        """The reading this device takes at `at` (timezone-aware)."""
        local = at.astimezone(self.tz)
        hour = local.hour + local.minute / 60
        values = self._ordinary(at, hour)
        anomalous = self.anomalies and self.rng.random() < ANOMALY_RATE
        if anomalous:
            values = self._alarming(values)
        self.battery -= self.rng.uniform(0.05, 0.15)
        if self.battery < 5:
            self.battery = 100.0  # the patient charged it
        return Sample(
            at=at,
            measurements=[self._as_sent(code, value) for code, value in values],
            battery=max(0, min(100, round(self.battery))),
            anomalous=anomalous,
        )

    def message(self, at: dt.datetime, msg_id: str | None = None) -> tuple[str, bytes, Sample]:
        """(topic, signed payload, sample) of the reading taken at `at`."""
        sample = self.sample(at)
        topic, payload = encode_reading(
            self.device_id,
            self.secret,
            sample.measurements,
            ts=at,
            msg_id=msg_id or f"sim-{uuid.uuid4().hex}",
            battery=sample.battery,
        )
        return topic, payload, sample

    def _jitter(self, day: dt.date, hour: float) -> float:
        """Minutes off the hour, fixed per device and slot (so a rerun finds the same times)."""
        if self.kind == "heart_rate_patch":
            return 0.0
        digest = hashlib.sha256(f"{self.device_id}:{day}:{hour}".encode()).digest()
        return digest[0] / 255 * 30 - 15

    def schedule(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """When the patient measured with this device between `start` and `end` (history)."""
        day = start.astimezone(self.tz).date()
        while True:
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=self.tz)
            if midnight > end:
                return
            for hour in SCHEDULES[self.kind]:
                at = midnight + dt.timedelta(hours=hour, minutes=self._jitter(day, hour))
                if start <= at <= end:
                    yield at.astimezone(dt.UTC)
            day += dt.timedelta(days=1)


# --- senders -----------------------------------------------------------------------------------


class Sender(Protocol):
    def send(self, topic: str, payload: bytes) -> None: ...

    def backlog(self) -> int: ...

    def counts(self) -> dict[str, int]: ...

    def close(self, timeout: float) -> None: ...


class MqttSender:
    """QoS 1 publisher on one connection; paho reconnects and resends unacked messages."""

    def __init__(self, url: str, max_backlog: int = 1000) -> None:
        import paho.mqtt.client as mqtt

        from .mqtt import parse_broker_url

        address = parse_broker_url(url)
        self.max_backlog = max_backlog
        self.published = 0
        self.acked = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closing = False
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"vh-sim-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set()
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(address.host, address.port, keepalive=30)
        client.loop_start()
        self.client = client
        self.where = f"{address.host}:{address.port}"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT connection to %s refused: %s", self.where, reason)
            return
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()
        if self._closing:
            return
        logger.warning("MQTT disconnected from %s (%s); reconnecting", self.where, reason)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            if reason is not None and getattr(reason, "is_failure", False):
                self.refused += 1
            else:
                self.acked += 1

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def backlog(self) -> int:
        with self._lock:
            return self.published - self.acked - self.refused

    def send(self, topic: str, payload: bytes) -> None:
        # Messages published while disconnected wait in paho's queue; bound that queue.
        deadline = time.monotonic() + 30
        while self.backlog() >= self.max_backlog and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.publish(topic, payload, qos=1)
        with self._lock:
            self.published += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"published": self.published, "acked": self.acked, "refused": self.refused}

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.backlog() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()


class HttpSender:
    """POSTs tokens to /api/v1/devices/ingest on one keep-alive connection."""

    PATH = "/api/v1/devices/ingest"

    def __init__(self, base_url: str, timeout: float = 10) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path.rstrip("/") + self.PATH
        self.timeout = timeout
        self.statuses: Counter[str] = Counter()
        self.published = 0
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def send(self, topic: str, payload: bytes) -> None:
        headers = {"Content-Type": "application/jose", "Connection": "keep-alive"}
        self.published += 1
        for attempt in (1, 2):  # a keep-alive connection the server closed: one fresh retry
            conn = self._connection()
            try:
                conn.request("POST", self.path, body=payload, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._conn = None
                if attempt == 2:
                    self.statuses["error"] += 1
                    logger.warning("POST %s failed: %s", self.path, exc)
                continue
            self.statuses[str(response.status)] += 1
            if response.will_close:
                conn.close()
                self._conn = None
            return

    def backlog(self) -> int:
        return 0

    def counts(self) -> dict[str, int]:
        return {"published": self.published, **{f"http_{k}": v for k, v in self.statuses.items()}}

    def close(self, timeout: float) -> None:
        if self._conn is not None:
            self._conn.close()


# --- the pacing loop ---------------------------------------------------------------------------


@dataclass
class Summary:
    devices: int
    seconds: float
    anomalies: int
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        parts = " ".join(f"{k}={v}" for k, v in self.counts.items())
        return (
            f"simulated devices={self.devices} seconds={self.seconds:.1f} "
            f"anomalies={self.anomalies} {parts}"
        )


class Simulator:
    """Sends `rate` readings a second in total, round-robin over the devices."""

    def __init__(
        self,
        series: Sequence[DeviceSeries],
        sender: Sender,
        rate: float,
        *,
        out: Callable[[str], None] = logger.info,
        progress_every: float = 10.0,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        if not series:
            raise ValueError("no device to simulate")
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.series = list(series)
        self.sender = sender
        self.rate = rate
        self.out = out
        self.progress_every = progress_every
        self.now = now
        self.anomalies = 0

    def run(self, duration: float, stop: threading.Event) -> Summary:
        """Send until `duration` seconds passed (0: until `stop` is set)."""
        started = last = last_progress = time.monotonic()
        tokens = 1.0  # the first message goes at once
        burst = max(1.0, self.rate)
        turn = 0
        while not stop.is_set():
            clock = time.monotonic()
            if duration and clock - started >= duration:
                break
            tokens = min(burst, tokens + (clock - last) * self.rate)
            last = clock
            if clock - last_progress >= self.progress_every:
                last_progress = clock
                self.out(self._progress(clock - started))
            if tokens < 1:
                wait = (1 - tokens) / self.rate
                if duration:
                    wait = min(wait, max(0.0, started + duration - clock))
                stop.wait(min(wait, self.progress_every))
                continue
            tokens -= 1
            device = self.series[turn % len(self.series)]
            turn += 1
            topic, payload, sample = device.message(self.now())
            self.anomalies += sample.anomalous
            self.sender.send(topic, payload)
        self.sender.close(timeout=10)
        return Summary(
            devices=len(self.series),
            seconds=time.monotonic() - started,
            anomalies=self.anomalies,
            counts=self.sender.counts(),
        )

    def _progress(self, elapsed: float) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.sender.counts().items())
        return f"simulating: {elapsed:.0f} s {counts} backlog={self.sender.backlog()}"


# --- the database side -------------------------------------------------------------------------


def patient_conditions(patient: Patient) -> list[str]:
    """The ICD-10 codes of the patient's current problems."""
    return list(
        Condition.objects.filter(
            patient=patient,
            code__system=CodeSystem.ICD10,
            clinical_status__in=[
                Condition.ClinicalStatus.ACTIVE,
                Condition.ClinicalStatus.RECURRENCE,
            ],
        ).values_list("code__code", flat=True)
    )


def patient_baseline(patient: Patient, conditions: Iterable[str] | None = None) -> Baseline:
    today = dt.date.today()  # noqa: DTZ011 - an age in years does not need the time zone
    born = patient.birth_date
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return baseline_for(
        str(patient.fhir_id),
        sex=patient.sex,
        age=age,
        conditions=patient_conditions(patient) if conditions is None else conditions,
    )


def ensure_kit(patient: Patient) -> list[Device]:
    """Register the devices of the patient's standard kit it does not have yet (idempotent)."""
    from .services.registry import do_register_device

    have = set(
        Device.objects.filter(patient=patient, status=Device.Status.ACTIVE).values_list(
            "kind", flat=True
        )
    )
    created = []
    for kind in kit_for_conditions(patient_conditions(patient)):
        if kind not in have:
            device, _secret = do_register_device(
                kind, patient, None, manufacturer="Simulateur VH", model=MODELS[kind]
            )
            created.append(device)
    return created


def demo_patients() -> QuerySet[Patient]:
    """The demo cast's patients (apps/records/demo.py), by id."""
    from apps.records.demo import PATIENTS

    return Patient.objects.filter(ahv_number__in=[p[0] for p in PATIENTS]).order_by("pk")


def _active_devices() -> QuerySet[Device]:
    return Device.objects.filter(status=Device.Status.ACTIVE, patient__isnull=False)


def devices_to_simulate(patients: int, *, register_missing: bool = True) -> list[Device]:
    """The active devices of the first `patients` patients that have any (by patient id).

    With fewer such patients, demo patients without devices are given their standard kit first.
    """
    with_devices = list(
        _active_devices().order_by("patient_id").values_list("patient_id", flat=True).distinct()
    )
    if len(with_devices) < patients and register_missing:
        for patient in demo_patients().exclude(pk__in=with_devices):
            if len(with_devices) >= patients:
                break
            if ensure_kit(patient):
                with_devices.append(patient.pk)
        with_devices.sort()
    chosen = with_devices[:patients]
    return list(
        _active_devices()
        .filter(patient_id__in=chosen)
        .select_related("patient")
        .order_by("patient_id", "pk")
    )


def series_for(
    devices: Iterable[Device], *, anomalies: bool, tz: dt.tzinfo | None = None
) -> list[DeviceSeries]:
    """One series per device, around its patient's baseline."""
    zone = tz or ZoneInfo(settings.TIME_ZONE)
    baselines: dict[int, Baseline] = {}
    out = []
    for device in devices:
        patient = device.patient
        assert patient is not None  # noqa: S101 - devices_to_simulate keeps assigned ones
        if patient.pk not in baselines:
            baselines[patient.pk] = patient_baseline(patient)
        out.append(
            DeviceSeries(
                device.device_id,
                device.kind,
                baselines[patient.pk],
                secret=device.secret,
                anomalies=anomalies,
                battery=device.battery,  # go on from the last level the platform saw
                tz=zone,
            )
        )
    return out
