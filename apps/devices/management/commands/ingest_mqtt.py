"""`manage.py ingest_mqtt [--client-id ID] [--group G] [--batch-size N] [--batch-ms MS]`."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.mqtt import SHARE_GROUP, SUBSCRIPTION, Ingestor, default_client_id, subscription


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _not_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def _group(value: str) -> str:
    subscription(value)  # ValueError (argparse's "invalid value") unless letters, digits, - _
    return value


class Command(BaseCommand):
    help = f"Store device readings from MQTT ({SUBSCRIPTION}); SIGTERM drains and exits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--client-id",
            default=None,
            help="MQTT client id; keep it stable so a restart resumes its session "
            "(default: vh-ingest-<hostname>)",
        )
        parser.add_argument(
            "--group",
            type=_group,
            default=SHARE_GROUP,
            help="shared-subscription group: letters, digits, - and _ (default: vh-ingest); "
            "the copies of one deployment share it, other groups get their own copy of "
            "every message",
        )
        parser.add_argument("--batch-size", type=_positive, default=500, help="messages per batch")
        parser.add_argument(
            "--batch-ms",
            type=_not_negative,
            default=0,
            help="once the queue is dry, how long to wait for more before storing (ms, "
            "default 0: store what is queued at once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url = settings.MQTT_URL
        if not url:
            raise CommandError(
                "MQTT_URL is not set; set it to the broker, e.g. mqtt://127.0.0.1:1883"
            )
        client_id = options["client_id"] or default_client_id()
        if not 0 < len(client_id) <= 64:
            raise CommandError("--client-id must be 1 to 64 characters")
        ingestor = Ingestor(
            url,
            client_id,
            batch_size=options["batch_size"],
            batch_ms=options["batch_ms"],
            group=options["group"],
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            ingestor.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if not ingestor.run():
            raise CommandError("stopped before every received message was stored")
