"""Connected devices, the messages they sent (the dedupe key) and rejected input."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField
from apps.core.models import FhirResource

DEVICE_ID_PREFIX = "dev-"
# A bounded copy of a rejected payload is enough to diagnose it; the rest is dropped.
DEAD_LETTER_RAW_BYTES = 4096
DEVICE_REF_LENGTH = 64


def new_device_id() -> str:
    """A public, unguessable device id ("dev-" and 20 URL-safe characters)."""
    return DEVICE_ID_PREFIX + secrets.token_urlsafe(15)


def new_device_secret() -> str:
    """The HMAC key of a device (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


class DeviceKind(models.TextChoices):
    BLOOD_PRESSURE = "blood_pressure", _("blood-pressure monitor")
    GLUCOMETER = "glucometer", _("glucometer")
    PULSE_OXIMETER = "pulse_oximeter", _("pulse oximeter")
    SCALE = "scale", _("scale")
    THERMOMETER = "thermometer", _("thermometer")
    HEART_RATE_PATCH = "heart_rate_patch", _("heart-rate patch")


class Transport(models.TextChoices):
    MQTT = "mqtt", _("MQTT")
    HTTP = "http", _("HTTPS")


class Device(FhirResource):
    """A connected device (FHIR Device), assigned to at most one patient at a time."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        RETIRED = "retired", _("retired")

    device_id = models.CharField(
        _("device id"), max_length=64, unique=True, default=new_device_id, editable=False
    )
    kind = models.CharField(_("kind"), max_length=20, choices=DeviceKind.choices)
    patient = models.ForeignKey(
        "records.Patient",
        verbose_name=_("patient"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="devices",
    )
    secret = EncryptedTextField(_("secret"), editable=False)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    manufacturer = models.CharField(_("manufacturer"), max_length=100, blank=True)
    model = models.CharField(_("model"), max_length=100, blank=True)
    serial = models.CharField(_("serial number"), max_length=100, blank=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    registered_at = models.DateTimeField(_("registered"), default=timezone.now)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    last_reading_at = models.DateTimeField(_("last reading"), null=True, blank=True)
    battery = models.PositiveSmallIntegerField(_("battery (%)"), null=True, blank=True)

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["-registered_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(battery__isnull=True) | Q(battery__lte=100), name="device_battery_max"
            ),
            models.CheckConstraint(
                condition=Q(status="active", retired_at__isnull=True)
                | Q(status="retired", retired_at__isnull=False),
                name="device_retired_at_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.device_id}"

    @property
    def topic(self) -> str:
        from .protocol import topic_for

        return topic_for(self.device_id)


class DeviceMessage(models.Model):
    """One accepted message; (device, message_id) is the dedupe key of redeliveries."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="messages")
    message_id = models.CharField(_("message id"), max_length=64)
    measured_at = models.DateTimeField(_("measured"))
    received_at = models.DateTimeField(_("received"))
    readings = models.PositiveIntegerField(_("readings"))
    transport = models.CharField(_("transport"), max_length=4, choices=Transport.choices)

    class Meta:
        verbose_name = _("device message")
        verbose_name_plural = _("device messages")
        constraints = [
            models.UniqueConstraint(fields=["device", "message_id"], name="device_message_unique")
        ]
        indexes = [models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"{self.device_id}:{self.message_id}"


class DeadLetterReason(models.TextChoices):
    UNPARSEABLE = "unparseable", _("not a readable JWS token")
    OVERSIZED = "oversized", _("payload too large")
    BAD_ALGORITHM = "bad_algorithm", _("signature algorithm refused")
    BAD_SIGNATURE = "bad_signature", _("signature does not verify")
    UNKNOWN_DEVICE = "unknown_device", _("unknown device")
    RETIRED_DEVICE = "retired_device", _("retired device")
    UNASSIGNED_DEVICE = "unassigned_device", _("device not assigned to a patient")
    TOPIC_MISMATCH = "topic_mismatch", _("topic names another device")
    MALFORMED_CLAIMS = "malformed_claims", _("claims missing or malformed")
    UNKNOWN_CODE = "unknown_code", _("unknown measurement code")
    WRONG_UNIT = "wrong_unit", _("unit not valid for the code")
    IMPOSSIBLE_VALUE = "impossible_value", _("physiologically impossible value")
    FUTURE_TIME = "future_time", _("measurement time in the future")
    TOO_OLD = "too_old", _("measurement too old")


class DeadLetter(models.Model):
    """Input that could not be stored, kept (bounded) for diagnosis and counted."""

    received_at = models.DateTimeField(_("received"))
    transport = models.CharField(_("transport"), max_length=4, choices=Transport.choices)
    topic = models.CharField(_("topic"), max_length=200, blank=True)
    reason = models.CharField(_("reason"), max_length=20, choices=DeadLetterReason.choices)
    detail = models.CharField(_("detail"), max_length=500)
    device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="dead_letters"
    )
    device_ref = models.CharField(_("claimed device id"), max_length=DEVICE_REF_LENGTH, blank=True)
    raw = models.BinaryField(_("raw payload (first 4 KiB)"), max_length=DEAD_LETTER_RAW_BYTES)
    size = models.PositiveIntegerField(_("payload size (bytes)"))

    class Meta:
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["received_at"]),
            models.Index(fields=["reason", "-received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.reason} at {self.received_at:%Y-%m-%d %H:%M:%S}"
