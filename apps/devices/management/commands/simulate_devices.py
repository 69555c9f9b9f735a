"""`manage.py simulate_devices`: realistic readings from the demo patients' devices, paced."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.simulator import (
    HttpSender,
    MqttSender,
    Sender,
    Simulator,
    devices_to_simulate,
    series_for,
)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _duration(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Send simulated device readings for the first N patients with devices (registering "
        "demo kits when needed) over MQTT (MQTT_URL) or HTTPS (--http)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=_positive_int, default=8, help="how many patients")
        parser.add_argument(
            "--rate", type=_positive_float, default=5, help="readings per second, all devices"
        )
        parser.add_argument(
            "--duration", type=_duration, default=60, help="seconds; 0 runs until SIGTERM/SIGINT"
        )
        parser.add_argument(
            "--anomalies", action="store_true", help="about 1.5 %% of readings are alarming"
        )
        parser.add_argument(
            "--http", action="store_true", help="POST to the HTTPS endpoint instead of MQTT"
        )
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="the web server (with --http)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sender: Sender
        if options["http"]:
            try:
                sender = HttpSender(options["url"])
            except ValueError as exc:
                raise CommandError(f"--url: {exc}") from None
            where = sender.path
        else:
            url = settings.MQTT_URL
            if not url:
                raise CommandError(
                    "MQTT_URL is not set; set it to the broker (e.g. mqtt://127.0.0.1:1883) "
                    "or use --http"
                )
            sender = MqttSender(url)
            where = sender.where
        devices = devices_to_simulate(options["patients"])
        if not devices:
            sender.close(timeout=0)
            raise CommandError("no patient has an active device (run seed_demo first)")
        series = series_for(devices, anomalies=options["anomalies"])
        patients = len({device.patient_id for device in devices})
        self.stdout.write(
            f"Simulating {len(series)} devices of {patients} patients, {options['rate']:g} "
            f"readings/s to {where}"
            + (f" for {options['duration']:g} s" if options["duration"] else " (Ctrl-C stops)")
        )
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            simulator = Simulator(series, sender, options["rate"], out=self.stdout.write)
            summary = simulator.run(options["duration"], stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(summary.line())
