"""Batches of device messages: stored once, bad ones dead-lettered, good ones unaffected."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import jwt
from django.core.cache import cache

from apps.audit.models import AuditEvent
from apps.devices.models import DeadLetter, Device, DeviceMessage
from apps.devices.protocol import encode_reading
from apps.devices.services.ingest import RawMessage, dead_letter_totals, ingest
from apps.devices.services.registry import do_register_device, do_retire_device
from apps.records.models import Observation, Patient

from .conftest import BP, ago

Make = Callable[..., RawMessage]


def test_good_message_is_stored_as_canonical_observations(device: Device, message: Make) -> None:
    # given a message at a known time with a battery level
    ts = ago(minutes=3)
    raw = message([("8480-6", 171, "mm[Hg]"), ("8462-4", 95, "mm[Hg]")], ts=ts, battery=64)

    # when
    result = ingest([raw])

    # then
    assert (result.stored, result.messages_stored, result.dead_lettered) == (2, 1, 0)
    stored = Observation.objects.filter(pk__in=result.observation_ids).order_by("code__code")
    assert [(o.code.code, o.value, o.unit) for o in stored] == [
        ("8462-4", Decimal(95), "mm[Hg]"),
        ("8480-6", Decimal(171), "mm[Hg]"),
    ]
    first = stored[1]
    assert first.patient_id == device.patient_id
    assert (first.source, first.device_id, first.category) == (
        "device",
        device.device_id,
        "vital-signs",
    )
    assert first.effective_at == ts
    assert first.interpretation == "HH"  # reference range 90-139 copied from the code
    device.refresh_from_db()
    assert device.last_reading_at == ts
    assert device.battery == 64
    assert device.last_seen_at is not None
    assert DeviceMessage.objects.get(device=device).readings == 2


def test_units_are_converted_on_the_way_in(reference: None, record: Patient) -> None:
    scale, secret = do_register_device("scale", record, None)
    topic, payload = encode_reading(scale.device_id, secret, [("29463-7", 154, "[lb_av]")])
    result = ingest([RawMessage(payload, "mqtt", topic)])
    obs = Observation.objects.get(pk=result.observation_ids[0])
    assert (obs.value, obs.unit) == (Decimal("69.8532"), "kg")


def test_redelivery_stores_nothing_twice(device: Device, message: Make) -> None:
    raw = message(msg_id="m-42")
    first = ingest([raw])
    again = ingest([raw])
    assert (first.stored, first.duplicates) == (2, 0)
    assert (again.stored, again.duplicates, again.dead_lettered) == (0, 1, 0)
    assert Observation.objects.filter(device_id=device.device_id).count() == 2
    assert DeviceMessage.objects.filter(device=device).count() == 1


def test_duplicate_within_one_batch_is_stored_once(device: Device, message: Make) -> None:
    raw = message(msg_id="m-1")
    other = message(msg_id="m-2")
    result = ingest([raw, other, raw])
    assert [o.status for o in result.outcomes] == ["stored", "stored", "duplicate"]
    assert result.stored == 4
    assert Observation.objects.filter(device_id=device.device_id).count() == 4


def test_same_message_id_from_two_devices_is_two_messages(
    device: Device, message: Make, record2: Patient
) -> None:
    other, secret = do_register_device("blood_pressure", record2, None)
    topic, payload = encode_reading(other.device_id, secret, BP, msg_id="same")
    result = ingest([message(msg_id="same"), RawMessage(payload, "mqtt", topic)])
    assert result.messages_stored == 2


def _mqtt(device_id: str, secret: str, measurements: list[tuple[str, int, str]]) -> RawMessage:
    topic, payload = encode_reading(device_id, secret, measurements)
    return RawMessage(payload, "mqtt", topic)


def _forge(device: Device, secret: str, claims: dict[str, object]) -> RawMessage:
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": device.device_id})
    return RawMessage(token.encode(), "mqtt", device.topic)


def test_every_bad_kind_is_dead_lettered_and_good_ones_still_stored(
    device_and_secret: tuple[Device, str],
    message: Make,
    record2: Patient,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    device, secret = device_and_secret
    retired, retired_secret = do_register_device("thermometer", record2, None)
    do_retire_device(retired, None)
    loose, loose_secret = do_register_device("scale", None, None)
    now = dt.datetime.now(dt.UTC)
    bad = {
        "unparseable": RawMessage(b"not a token", "mqtt", device.topic),
        "oversized": RawMessage(b"x" * (70 * 1024), "mqtt", device.topic),
        "bad_signature": message(secret="a-wrong-secret-that-is-long-enough-for-hs256!!"),
        "bad_algorithm": RawMessage(
            jwt.encode(
                {"id": "a"}, secret * 2, "HS512", headers={"kid": device.device_id}
            ).encode(),
            "mqtt",
            device.topic,
        ),
        "unknown_device": RawMessage(
            encode_reading("dev-nobody", secret, BP)[1], "mqtt", "vh/devices/dev-nobody/obs"
        ),
        "retired_device": _mqtt(retired.device_id, retired_secret, [("8310-5", 37, "Cel")]),
        "unassigned_device": _mqtt(loose.device_id, loose_secret, [("29463-7", 70, "kg")]),
        "topic_mismatch": RawMessage(message().payload, "mqtt", "vh/devices/dev-other/obs"),
        "malformed_claims": _forge(device, secret, {"id": "a", "ts": "soon", "obs": BP}),
        "unknown_code": message([("8480-6", 120, "mm[Hg]"), ("99999-9", 1, "mm[Hg]")]),
        "wrong_unit": message([("8480-6", 16, "kPa")]),
        "impossible_value": message([("8480-6", 1200, "mm[Hg]")]),
        "future_time": message(ts=now + dt.timedelta(hours=2)),
        "too_old": message(ts=now - dt.timedelta(days=400)),
    }
    good = [message(msg_id="good-1"), message(msg_id="good-2", ts=ago(minutes=1))]

    # when the bad ones arrive between the good ones
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest([good[0], *bad.values(), good[1]])

    # then each bad kind has its dead letter and both good messages are stored
    assert result.messages_stored == 2
    assert result.stored == 4
    assert result.dead_lettered == len(bad)
    assert dict(result.reasons) == dict.fromkeys(bad, 1)
    letters = {d.reason: d for d in DeadLetter.objects.all()}
    assert set(letters) == set(bad)
    assert all(d.detail for d in letters.values())
    assert letters["bad_signature"].device == device
    assert letters["retired_device"].device == retired
    assert letters["unknown_device"].device is None
    assert letters["unknown_device"].device_ref == "dev-nobody"
    assert letters["oversized"].size == 70 * 1024
    assert len(bytes(letters["oversized"].raw)) == 4096
    assert bytes(letters["unparseable"].raw) == b"not a token"
    assert "99999-9" in letters["unknown_code"].detail
    assert "kPa" in letters["wrong_unit"].detail
    # a message with one bad reading is refused whole: nothing of it is stored
    assert Observation.objects.filter(device_id=device.device_id).count() == 4
    # running totals for the dashboard, counted once committed
    assert dead_letter_totals() == dict.fromkeys(bad, 1)
    with django_capture_on_commit_callbacks(execute=True):
        ingest([bad["impossible_value"]])
    assert cache.get("devices:dead_letters:impossible_value") == 2


def test_one_audit_row_per_patient_per_batch(device: Device, message: Make) -> None:
    before = AuditEvent.objects.filter(object_type="devices.reading").count()
    ingest([message(), message(), message()])
    events = AuditEvent.objects.filter(object_type="devices.reading")
    assert events.count() == before + 1
    event = events.latest("seq")
    assert event.patient_id == str(device.patient_id)
    assert event.action == "create"
    assert event.detail["observations"] == 6
    assert event.detail["devices"] == {device.device_id: 6}


def test_battery_and_last_reading_follow_the_latest_measurement(
    device: Device, message: Make
) -> None:
    ingest([message(ts=ago(minutes=1), battery=50), message(ts=ago(minutes=30), battery=90)])
    device.refresh_from_db()
    assert device.battery == 50
    assert device.last_reading_at is not None
    assert device.last_reading_at > ago(minutes=2)
    # an older message arriving later does not move last_reading_at back
    ingest([message(ts=ago(hours=5))])
    refreshed = Device.objects.get(pk=device.pk)
    assert refreshed.last_reading_at == device.last_reading_at


def test_device_telemetry_is_written_when_it_says_something_new(
    device: Device, message: Make
) -> None:
    ingest([message(ts=ago(minutes=5), battery=80)])
    device.refresh_from_db()
    first_seen = device.last_seen_at

    ingest([message(ts=ago(minutes=5, seconds=-10), battery=80)])  # 10 s later, same battery
    device.refresh_from_db()
    assert device.last_seen_at == first_seen  # not rewritten for so little

    ingest([message(ts=ago(minutes=5, seconds=-20), battery=79)])  # the battery changed
    device.refresh_from_db()
    assert device.battery == 79
    assert device.last_seen_at > first_seen
