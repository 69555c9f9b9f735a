"""`manage.py register_device --patient FHIR_ID --kind KIND`: prints {device_id, secret, topic}."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.models import DeviceKind
from apps.devices.services import DeviceError
from apps.devices.services.registry import do_register_device
from apps.records.models import Patient


class Command(BaseCommand):
    help = "Register a device for a patient and print its id, secret (shown once) and topic."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patient", required=True, help="the patient's FHIR id")
        parser.add_argument("--kind", required=True, help=", ".join(DeviceKind.values))
        parser.add_argument("--manufacturer", default="")
        parser.add_argument("--model", default="")
        parser.add_argument("--serial", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            fhir_id = uuid.UUID(options["patient"])
        except ValueError:
            raise CommandError(
                f"--patient must be a FHIR id (a UUID), got {options['patient']!r}"
            ) from None
        patient = Patient.objects.filter(fhir_id=fhir_id).first()
        if patient is None:
            raise CommandError(f"no patient has the FHIR id {fhir_id}")
        if options["kind"] not in DeviceKind.values:
            kinds = ", ".join(DeviceKind.values)
            raise CommandError(f"unknown --kind {options['kind']!r}; use one of {kinds}")
        try:
            device, secret = do_register_device(
                options["kind"],
                patient,
                None,
                manufacturer=options["manufacturer"],
                model=options["model"],
                serial=options["serial"],
            )
        except DeviceError as exc:
            raise CommandError(str(exc)) from exc
        out = {"device_id": device.device_id, "secret": secret, "topic": device.topic}
        self.stdout.write(json.dumps(out))
