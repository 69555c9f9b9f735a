"""The device simulator: its series, and its readings stored through MQTT and HTTPS; demo seed."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Role
from apps.devices import demo
from apps.devices.models import Alert, DeadLetter, Device, DeviceMessage, OnCallShift, ThresholdRule
from apps.devices.services.registry import do_register_device
from apps.devices.simulator import (
    ALARM_LINES,
    ANOMALY_RATE,
    GLUCOSE,
    KINDS,
    SYSTOLIC,
    TEMPERATURE,
    WEIGHT,
    DeviceSeries,
    baseline_for,
    imperial_units,
    kit_for_conditions,
)
from apps.devices.units import MEASUREMENTS, to_canonical
from apps.records.demo import PATIENTS
from apps.records.models import CodeSystem, Concept, Condition, Observation, Patient
from apps.records.reference import load_reference_data
from apps.records.services.care_team import default_team, do_add_member

from .test_mqtt_ingest import IngestorProcess, _client_id, ingestors, wait_for  # noqa: F401

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
BASELINE = baseline_for("patient-a", sex="female", age=68, conditions=["I10", "E11.9"])


def _canonical(sample_measurements: list[tuple[str, float, str]]) -> dict[str, Decimal]:
    return {
        code: to_canonical(code, Decimal(str(value)), unit)[0]
        for code, value, unit in sample_measurements
    }


def _alarming(values: dict[str, Decimal]) -> bool:
    return any(
        not ALARM_LINES[code][0] <= value <= ALARM_LINES[code][1]
        for code, value in values.items()
        if code in ALARM_LINES
    )


def _run(kind: str, n: int, **kwargs: Any) -> list[Any]:
    series = DeviceSeries("dev-test", kind, BASELINE, seed=7, **kwargs)
    return [series.sample(START + dt.timedelta(minutes=37 * i)) for i in range(n)]


# --- the series, deterministically ------------------------------------------------------------


def test_kits_follow_the_patients_conditions() -> None:
    assert kit_for_conditions(["I10", "E11.9", "E78.5"]) == [
        "blood_pressure",
        "scale",
        "glucometer",
    ]
    assert kit_for_conditions(["I50.9", "N18.3"]) == ["blood_pressure", "scale"]
    assert kit_for_conditions(["J44.9", "I48.9"]) == [
        "pulse_oximeter",
        "thermometer",
        "heart_rate_patch",
    ]
    assert kit_for_conditions(["J45.9"]) == ["blood_pressure", "pulse_oximeter"]


def test_baselines_are_per_patient_and_reproducible() -> None:
    assert baseline_for("a", conditions=["I10"]) == baseline_for("a", conditions=["I10"])
    assert baseline_for("a") != baseline_for("b")
    # a hypertensive patient runs higher than the same patient without the diagnosis
    assert baseline_for("a", conditions=["I10"]).systolic > baseline_for("a").systolic + 10


def test_same_seed_same_series() -> None:
    assert _run("blood_pressure", 50) == _run("blood_pressure", 50)
    assert _run("blood_pressure", 50) != [
        DeviceSeries("dev-test", "blood_pressure", BASELINE, seed=8).sample(
            START + dt.timedelta(minutes=37 * i)
        )
        for i in range(50)
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_ordinary_readings_are_plausible_and_never_alarming(kind: str) -> None:
    samples = _run(kind, 2000)
    for sample in samples:
        assert not sample.anomalous
        values = _canonical(sample.measurements)  # raises if a bound or a unit is wrong
        assert not _alarming(values), (kind, sample)
        assert 0 <= sample.battery <= 100
        for code, value in values.items():
            measurement = MEASUREMENTS[code]
            assert measurement.low <= value <= measurement.high


def test_blood_pressure_is_higher_in_the_morning() -> None:
    series = DeviceSeries("dev-x", "blood_pressure", BASELINE, seed=1)
    day = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)

    def mean_systolic(hour: int) -> float:
        values = [
            series.sample(day + dt.timedelta(days=d, hours=hour)).measurements[0][1]
            for d in range(200)
        ]
        return sum(values) / len(values)

    assert mean_systolic(8) > mean_systolic(20) + 8


def test_weight_drifts_slowly() -> None:
    samples = _run("scale", 2000, imperial=False)  # 37-minute steps: about 51 days
    weights = [s.measurements[0][1] for s in samples]
    assert max(weights) - min(weights) > 1  # it moves
    steps = [abs(a - b) for a, b in zip(weights, weights[1:], strict=False)]
    assert max(steps) < 2  # but slowly


def test_battery_drains_and_is_recharged() -> None:
    samples = _run("thermometer", 3000, battery=50)
    levels = [s.battery for s in samples]
    assert levels[0] == 50 and levels[100] < levels[0]
    assert any(b > a for a, b in zip(levels, levels[1:], strict=False))  # recharged once


def test_some_devices_send_non_canonical_units() -> None:
    imperial = {
        kind: _run(kind, 1, imperial=True)[0].measurements for kind in ("glucometer", "scale")
    }
    assert imperial["glucometer"][0][2] == "mg/dL"
    assert imperial["scale"][0][2] == "[lb_av]"
    assert _run("thermometer", 1, imperial=True)[0].measurements[0][2] == "[degF]"
    assert _run("thermometer", 1, imperial=False)[0].measurements[0][2] == "Cel"
    # the same body: a pound figure is the kilogram figure times 2.2046
    in_lb = _run("scale", 1, imperial=True)[0].measurements[0][1]
    in_kg = _run("scale", 1, imperial=False)[0].measurements[0][1]
    assert abs(in_lb * 0.45359237 - in_kg) < 0.1
    flags = {imperial_units(f"dev-{i}") for i in range(20)}
    assert flags == {True, False}  # devices differ


def test_anomalies_come_at_the_expected_rate_and_are_alarming() -> None:
    anomalous = total = 0
    for kind in KINDS:
        for sample in _run(kind, 4000, anomalies=True):
            total += 1
            values = _canonical(sample.measurements)
            if sample.anomalous:
                anomalous += 1
                if kind != "scale":  # a weight jump has no fixed line
                    assert _alarming(values), (kind, sample)
            else:
                assert not _alarming(values), (kind, sample)
    assert 0.01 <= anomalous / total <= 0.02
    assert abs(anomalous / total - ANOMALY_RATE) < 0.004
    assert not any(s.anomalous for s in _run("glucometer", 4000))  # off by default


# --- end to end -------------------------------------------------------------------------------


def _kit(patient: Patient) -> list[Device]:
    """A device of each kind, with an imperial glucometer, scale and thermometer among them."""
    load_reference_data()
    devices = [do_register_device(kind, patient, None)[0] for kind in KINDS]
    for kind in ("glucometer", "scale", "thermometer"):
        while not any(d.kind == kind and imperial_units(d.device_id) for d in devices):
            devices.append(do_register_device(kind, patient, None)[0])
    return devices


def _summary(out: str) -> dict[str, int]:
    line = out.strip().splitlines()[-1]
    assert line.startswith("simulated devices="), out
    return {k: int(float(v)) for k, v in (part.split("=") for part in line.split()[1:])}


def _check_stored(devices: list[Device]) -> None:
    ids = [d.device_id for d in devices]
    assert not DeadLetter.objects.filter(device_ref__in=ids).exists()
    observations = Observation.objects.filter(device_id__in=ids)
    assert observations.exists()
    for obs in observations.select_related("code"):
        measurement = MEASUREMENTS[obs.code.code]
        assert obs.unit == measurement.unit  # converted to the canonical unit
        assert measurement.low <= obs.value <= measurement.high
    plausible = {WEIGHT: (30, 200), GLUCOSE: (2.5, 25), TEMPERATURE: (35, 41), SYSTOLIC: (80, 200)}
    for code, (low, high) in plausible.items():
        for value in observations.filter(code__code=code).values_list("value", flat=True):
            assert low <= value <= high, (code, value)
    # the imperial devices' readings were converted: kilograms, not pounds
    imperial_scales = [
        d.device_id for d in devices if d.kind == "scale" and imperial_units(d.device_id)
    ]
    weights = observations.filter(device_id__in=imperial_scales).values_list("value", flat=True)
    assert weights and all(w < 150 for w in weights)


@pytest.mark.django_db(transaction=True)
def test_mqtt_run_is_stored_by_the_ingestor(
    ingestors: Callable[[str], IngestorProcess],  # noqa: F811
    record: Patient,
    settings: Any,
) -> None:
    # given a patient with a full kit and a running ingestor
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"
    devices = _kit(record)
    ingestor = ingestors(_client_id())
    out = io.StringIO()

    # when the simulator runs for 2 s at 40 readings/s
    started = time.monotonic()
    call_command(
        "simulate_devices",
        "--patients=1",
        "--rate=40",
        "--duration=2",
        "--anomalies",
        stdout=out,
    )
    took = time.monotonic() - started

    # then every acknowledged message is stored, in canonical units, with plausible values
    summary = _summary(out.getvalue())
    assert summary["devices"] == len(devices)
    assert 60 <= summary["published"] <= 90  # paced: ~80 in 2 s
    assert summary["acked"] == summary["published"]
    assert took < 15
    stored = DeviceMessage.objects.filter(device__in=devices)
    wait_for(lambda: stored.count() == summary["published"], 20, ingestor.output)
    _check_stored(devices)
    assert Device.objects.filter(pk__in=[d.pk for d in devices], battery__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_http_run_posts_to_the_endpoint_and_gives_demo_patients_a_kit(
    live_server: Any, record: Patient
) -> None:
    # given a patient with devices and a demo patient (diabetic) without any
    devices = _kit(record)
    demo_patient = Patient.objects.create(
        family_name="Favre",
        given_names="Louise",
        birth_date=dt.date(1966, 11, 8),
        ahv_number=PATIENTS[4][0],
        sex="female",
    )
    Condition.objects.create(
        patient=demo_patient, code=Concept.objects.get(system=CodeSystem.ICD10, code="E11.9")
    )
    out = io.StringIO()

    # when the simulator posts for two patients
    call_command(
        "simulate_devices",
        "--patients=2",
        "--rate=30",
        "--duration=3",  # the live server's first request is slow (imports)
        "--http",
        f"--url={live_server.url}",
        stdout=out,
    )

    # then the demo patient got its kit, and every POST was stored (202)
    kit = Device.objects.filter(patient=demo_patient)
    assert list(kit.values_list("kind", flat=True)) == ["glucometer"]
    summary = _summary(out.getvalue())
    assert summary["published"] >= 10, out.getvalue()  # the test server is slow; no matter
    assert summary["http_202"] == summary["published"]
    assert DeviceMessage.objects.filter(transport="http").count() == summary["published"]
    _check_stored([*devices, *kit])


def test_without_mqtt_url_the_simulator_says_what_to_set(settings: Any) -> None:
    settings.MQTT_URL = None
    with pytest.raises(CommandError, match="MQTT_URL is not set"):
        call_command("simulate_devices", "--duration=1")


# --- demo seed --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_seed_gives_kits_and_a_week_of_history_once(
    make_user: Callable[..., Any], organization: Any
) -> None:
    # given two demo patients, hypertensive-diabetic and COPD with atrial fibrillation
    load_reference_data()
    users = {
        "physician": make_user(Role.PHYSICIAN, email="dr@example.test", organization=organization),
        "nurse": make_user(Role.NURSE, email="rn@example.test", organization=organization),
    }
    patients = []
    for ahv, family, given, born, sex, _city, _handle, problems, _allergies in PATIENTS[:2]:
        patient = Patient.objects.create(
            ahv_number=ahv,
            family_name=family,
            given_names=given,
            birth_date=dt.date.fromisoformat(born),
            sex=sex,
        )
        for code in problems:
            concept = Concept.objects.filter(system=CodeSystem.ICD10, code=code).first()
            if concept:
                Condition.objects.create(patient=patient, code=concept)
        for user in users.values():
            do_add_member(default_team(patient), user)
        patients.append(patient)

    # when the demo is seeded twice
    started = time.monotonic()
    demo.seed({"users": users})
    took = time.monotonic() - started
    devices, messages = Device.objects.count(), DeviceMessage.objects.count()
    observations, rules = Observation.objects.count(), ThresholdRule.objects.count()
    demo.seed({"users": users})

    # then the kits follow the conditions, a week of readings is stored, and nothing doubles
    kinds = {
        p.pk: set(Device.objects.filter(patient=p).values_list("kind", flat=True)) for p in patients
    }
    assert kinds[patients[0].pk] == {"blood_pressure", "scale", "glucometer"}
    assert kinds[patients[1].pk] == {"pulse_oximeter", "thermometer", "heart_rate_patch"}
    assert Device.objects.count() == devices == 6
    assert DeviceMessage.objects.count() == messages
    assert Observation.objects.count() == observations
    assert took < 5
    for device in Device.objects.all():
        stored = DeviceMessage.objects.filter(device=device)
        first = stored.order_by("measured_at").first()
        assert first is not None and stored.count() >= 6  # once a day or more, for a week
        assert first.measured_at < dt.datetime.now(dt.UTC) - dt.timedelta(days=6)
    assert not DeadLetter.objects.exists()
    # the physician's defaults for hypertension, diabetes, COPD; the on-call order; old alerts
    # of the week are handled, none is left open from before the last 12 hours
    assert ThresholdRule.objects.count() == rules > 0
    assert set(ThresholdRule.objects.values_list("template", flat=True)) == {
        "hypertension",
        "diabetes",
        "copd",
    }
    assert list(OnCallShift.objects.order_by("rank").values_list("user", flat=True)) == [
        users["nurse"].pk,
        users["physician"].pk,
    ]
    old = dt.datetime.now(dt.UTC) - demo.HANDLED_BEFORE
    assert not Alert.objects.filter(state__in=Alert.UNHANDLED, measured_at__lt=old).exists()
