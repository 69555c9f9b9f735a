"""The MQTT ingestor as a real process against Mosquitto and PostgreSQL: no loss, no duplicates."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
import pytest
from django.core.management import CommandError, call_command
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.core.processes import database_url
from apps.devices.models import DeadLetter, Device, DeviceMessage
from apps.devices.protocol import encode_reading
from apps.devices.services.registry import do_register_device
from apps.records.models import Observation, Patient
from apps.records.reference import load_reference_data

from .conftest import BP

pytestmark = pytest.mark.django_db(transaction=True)

BROKER = ("127.0.0.1", 1883)
MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
PULSE = "8867-4"  # heart rate, /min: one reading per message
# A shared-subscription group of this run alone: an ingestor of another process (a dev
# `make run`, another test run on the same broker) can never take this run's messages.
GROUP = f"test-{uuid.uuid4().hex[:8]}"


def _forget_session(client_id: str) -> None:
    """Drop the broker's persistent session of `client_id` so no later test feeds it."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect(*BROKER, clean_start=True, properties=props)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


class IngestorProcess:
    """`manage.py ingest_mqtt` in a subprocess; its log goes to a temporary file."""

    def __init__(self, client_id: str, group: str = GROUP) -> None:
        self.client_id = client_id
        self.log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DB_CONN_MAX_AGE": "0",
            "MQTT_URL": f"mqtt://{BROKER[0]}:{BROKER[1]}",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, str(MANAGE), "ingest_mqtt", "--client-id", client_id]
            + ["--group", group, "--batch-size", "200", "--batch-ms", "50"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "MQTT subscribed" in self.output(), 20, self.output)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stored_messages(self) -> int:
        """Messages this process stored, from its per-batch summary lines."""
        return sum(
            int(n) for n in re.findall(r"batch messages=\d+ stored_messages=(\d+)", self.output())
        )

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no drain, no acks, no disconnect
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def wait_for(
    condition: Callable[[], bool], seconds: float, explain: Callable[[], Any] = lambda: ""
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds} s: {explain()}")
        time.sleep(0.05)


@pytest.fixture
def ingestors() -> Iterator[Callable[..., IngestorProcess]]:
    started: list[IngestorProcess] = []

    def start(client_id: str, group: str = GROUP) -> IngestorProcess:
        process = IngestorProcess(client_id, group)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
        for client_id in {p.client_id for p in started}:
            _forget_session(client_id)


@pytest.fixture
def publisher() -> Iterator[mqtt.Client]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"vh-test-pub-{uuid.uuid4()}")
    client.max_inflight_messages_set(200)
    client.connect(*BROKER)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def _client_id() -> str:
    return f"vh-test-ingest-{uuid.uuid4().hex[:12]}"


def _devices(patient: Patient, n: int) -> list[tuple[Device, str]]:
    load_reference_data()
    return [do_register_device("heart_rate_patch", patient, None) for _ in range(n)]


def _publish_paced(
    client: mqtt.Client,
    devices: list[tuple[Device, str]],
    per_device: int,
    stored: Callable[[], int],
    on_progress: Callable[[int], None],
    backlog: int = 800,
) -> int:
    """Publish QoS 1 readings, at most `backlog` ahead of what is stored.

    Mosquitto's default max_queued_messages (1000 per session) drops the excess; keeping the
    backlog below it tests the ingestor, not the broker's queue limit.
    """
    messages = [
        encode_reading(device.device_id, secret, [(PULSE, 60 + i % 40, "/min")], msg_id=f"m{i}")
        for device, secret in devices
        for i in range(per_device)
    ]
    infos = []
    deadline = time.monotonic() + 50
    sent = 0
    while sent < len(messages):
        done = stored()
        on_progress(done)
        if sent - done < backlog:
            for topic, payload in messages[sent : sent + 100]:
                infos.append(client.publish(topic, payload, qos=1))
            sent = min(sent + 100, len(messages))
        else:
            time.sleep(0.02)
        assert time.monotonic() < deadline, f"publishing stalled at {sent}, stored {done}"
    for info in infos:
        info.wait_for_publish(timeout=10)
    return len(messages)


def _stored(devices: list[tuple[Device, str]]) -> Callable[[], int]:
    ids = [device.pk for device, _ in devices]
    return lambda: DeviceMessage.objects.filter(device_id__in=ids).count()


def _observations(devices: list[tuple[Device, str]]) -> int:
    return Observation.objects.filter(device_id__in=[d.device_id for d, _ in devices]).count()


def test_published_readings_are_stored_and_sigterm_exits_cleanly(
    ingestors: Callable[[str], IngestorProcess], publisher: mqtt.Client, record: Patient
) -> None:
    # given an ingestor and a blood-pressure monitor
    ingestor = ingestors(_client_id())
    load_reference_data()
    device, secret = do_register_device("blood_pressure", record, None)

    # when it publishes three readings, one message with a wrong key and one that is no token
    for i in range(3):
        publisher.publish(*encode_reading(device.device_id, secret, BP, msg_id=f"ok-{i}"), qos=1)
    topic, forged = encode_reading(
        device.device_id, "not-the-secret-of-this-device-at-all-0123456789", BP, msg_id="forged"
    )
    publisher.publish(topic, forged, qos=1).wait_for_publish(5)
    publisher.publish(topic, b"garbage", qos=1).wait_for_publish(5)

    # then the good ones are Observations, the bad ones dead letters
    wait_for(
        lambda: (
            DeadLetter.objects.filter(device_ref=device.device_id).count() == 2
            and Observation.objects.filter(device_id=device.device_id).count() == 6
        ),
        20,
        ingestor.output,
    )
    reasons = set(
        DeadLetter.objects.filter(device_ref=device.device_id).values_list("reason", flat=True)
    )
    assert reasons == {"bad_signature", "unparseable"}
    assert DeviceMessage.objects.filter(device=device).count() == 3

    # and SIGTERM drains and exits 0, logging counts but never payloads
    assert ingestor.terminate() == 0
    log = ingestor.output()
    assert "stored_messages=3 readings=6 duplicates=0 dead_lettered=2" in log
    assert forged.decode() not in log and "garbage" not in log


def test_kill_9_in_the_middle_loses_nothing_and_duplicates_nothing(
    ingestors: Callable[[str], IngestorProcess], publisher: mqtt.Client, record: Patient
) -> None:
    # given 50 devices and an ingestor
    devices = _devices(record, 50)
    client_id = _client_id()
    current = [ingestors(client_id)]
    killed_at: list[int] = []
    stored = _stored(devices)

    def crash_halfway(done: int) -> None:
        if not killed_at and done >= 2500:
            current[0].kill()
            killed_at.append(done)
            current.append(ingestors(client_id))  # the same session resumes
            current.pop(0)

    # when 5,000 messages are published and the ingestor is killed -9 half-way
    total = _publish_paced(publisher, devices, 100, stored, crash_halfway)
    wait_for(lambda: stored() >= total, 40, lambda: (stored(), current[0].output()))

    # then exactly 5,000 are stored, each once
    assert killed_at and 2500 <= killed_at[0] < 5000
    assert total == 5000
    assert stored() == 5000
    assert _observations(devices) == 5000
    assert current[0].terminate() == 0
    assert _observations(devices) == 5000  # nothing more arrived while draining


def test_two_ingestors_share_the_load_and_stopping_one_loses_nothing(
    ingestors: Callable[[str], IngestorProcess], publisher: mqtt.Client, record: Patient
) -> None:
    # given two ingestors on the shared subscription
    devices = _devices(record, 20)
    first, second = ingestors(_client_id()), ingestors(_client_id())
    stored = _stored(devices)
    stopped = {"first": False}

    def stop_first(done: int) -> None:
        if not stopped["first"] and done >= 600:
            stopped["first"] = True
            assert first.terminate() == 0

    # when 2,000 messages are published and the first stops mid-stream
    total = _publish_paced(publisher, devices, 100, stored, stop_first)
    wait_for(lambda: stored() >= total, 40, lambda: (stored(), second.output()))

    # then nothing is lost or doubled, and both took part
    assert stopped["first"]
    assert stored() == total == 2000
    assert _observations(devices) == 2000
    assert second.terminate() == 0
    from_first, from_second = first.stored_messages(), second.stored_messages()
    assert from_first > 0 and from_second > 0
    assert from_first + from_second == 2000


def test_without_mqtt_url_the_command_says_what_to_set(settings: Any) -> None:
    settings.MQTT_URL = None
    with pytest.raises(CommandError, match="MQTT_URL is not set"):
        call_command("ingest_mqtt")


@pytest.mark.parametrize("group", ["a/b", "a+b", "#", "", "x" * 65])
def test_the_group_must_be_a_plain_name(group: str) -> None:
    with pytest.raises(CommandError, match="--group"):
        call_command("ingest_mqtt", "--group", group)


def test_an_ingestor_of_another_group_gets_its_own_copy(
    ingestors: Callable[..., IngestorProcess], publisher: mqtt.Client, record: Patient
) -> None:
    # given an ingestor of another group, subscribed alongside this run's
    load_reference_data()
    device, secret = do_register_device("heart_rate_patch", record, None)
    ours = ingestors(_client_id())
    other = ingestors(_client_id(), group=f"test-{uuid.uuid4().hex[:8]}")

    # when a message is published
    publisher.publish(*encode_reading(device.device_id, secret, [(PULSE, 70, "/min")]), qos=1)

    # then both groups receive it (one stores it, the other finds it already stored)
    wait_for(
        lambda: "batch messages=1" in ours.output() and "batch messages=1" in other.output(),
        20,
        lambda: (ours.output(), other.output()),
    )
    assert ours.stored_messages() + other.stored_messages() == 1
    assert Observation.objects.filter(device_id=device.device_id).count() == 1
