"""Connected devices, the messages they sent (the dedupe key) and rejected input."""

from __future__ import annotations

import secrets
from decimal import Decimal

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

    # No index of its own: the unique (device, message_id) constraint leads with it.
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
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


class Severity(models.TextChoices):
    """How urgent an alert is; the order of `SEVERITY_RANK` is the order of urgency."""

    INFO = "info", _("information")
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")


SEVERITY_RANK: dict[str, int] = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class ThresholdRule(models.Model):
    """A physician's limit on one measurement of one patient, in the code's canonical unit.

    A reading *breaches* the rule when it is above/below `limit`, or (rise/fall) when it moved
    by more than `limit` from the lowest/highest reading within `window`. The rule *fires*
    (one alert) when at least `n_of` of the last `m_of` readings breach, and re-arms only once
    the latest reading is back past the limit by `hysteresis`: no flood while a value hovers.
    """

    class Kind(models.TextChoices):
        ABOVE = "above", _("above")
        BELOW = "below", _("below")
        RISE = "rise", _("rises by more than")
        FALL = "fall", _("falls by more than")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="threshold_rules"
    )
    code = models.CharField(_("measurement"), max_length=20)
    kind = models.CharField(_("rule"), max_length=5, choices=Kind.choices)
    limit = models.DecimalField(_("limit"), max_digits=10, decimal_places=4)
    window = models.DurationField(
        _("within"), null=True, blank=True, help_text=_("Rise and fall rules only.")
    )
    n_of = models.PositiveSmallIntegerField(_("readings out of range (N)"), default=1)
    m_of = models.PositiveSmallIntegerField(_("among the last (M)"), default=1)
    hysteresis = models.DecimalField(
        _("hysteresis"), max_digits=10, decimal_places=4, default=Decimal(0)
    )
    severity = models.CharField(
        _("severity"), max_length=8, choices=Severity.choices, default=Severity.WARNING
    )
    escalate_after = models.DurationField(
        _("escalate after"),
        null=True,
        blank=True,
        help_text=_("Empty: the hospital's default for the severity."),
    )
    active = models.BooleanField(_("active"), default=True)
    # Firing: an alert was raised and the readings have not come back yet.
    firing = models.BooleanField(_("firing"), default=False, editable=False)
    template = models.CharField(_("from defaults"), max_length=40, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("threshold rule")
        verbose_name_plural = _("threshold rules")
        ordering = ["code", "kind", "limit"]
        indexes = [
            models.Index(
                fields=["patient", "code"], condition=Q(active=True), name="threshold_active_idx"
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(n_of__gte=1) & Q(m_of__gte=models.F("n_of")) & Q(m_of__lte=50),
                name="threshold_n_of_m",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["above", "below"], window__isnull=True)
                | Q(kind__in=["rise", "fall"], window__isnull=False, limit__gt=0),
                name="threshold_window_for_trends",
            ),
            models.CheckConstraint(condition=Q(hysteresis__gte=0), name="threshold_hysteresis"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.kind} {self.limit.normalize():f}"

    @property
    def unit(self) -> str:
        from .units import MEASUREMENTS

        measurement = MEASUREMENTS.get(self.code)
        return measurement.unit if measurement else ""

    @property
    def measurement_label(self) -> str:
        from .units import MEASUREMENTS

        measurement = MEASUREMENTS.get(self.code)
        return measurement.label if measurement else self.code


class Alert(models.Model):
    """A rule that fired, and what the care team did about it."""

    class State(models.TextChoices):
        OPEN = "open", _("open")
        ACKNOWLEDGED = "acknowledged", _("acknowledged")
        ESCALATED = "escalated", _("escalated")
        RESOLVED = "resolved", _("resolved")

    UNHANDLED = (State.OPEN, State.ESCALATED)

    patient = models.ForeignKey("records.Patient", on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(
        ThresholdRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    code = models.CharField(_("measurement"), max_length=20)
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices)
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.OPEN)
    summary = models.CharField(_("summary"), max_length=200)
    value = models.DecimalField(_("value"), max_digits=12, decimal_places=4)
    unit = models.CharField(_("unit"), max_length=30)
    readings = models.ManyToManyField(
        "records.Observation", related_name="+", verbose_name=_("readings")
    )
    opened_at = models.DateTimeField(_("raised"), default=timezone.now)
    measured_at = models.DateTimeField(_("measured"))
    # The readings came back within the limit (with hysteresis); the alert stays until handled.
    cleared_at = models.DateTimeField(_("back to normal"), null=True, blank=True)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(_("note"), blank=True)
    escalation_level = models.PositiveSmallIntegerField(_("escalations"), default=0)
    escalate_at = models.DateTimeField(_("escalates at"), null=True, blank=True)
    escalated_to = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="+", blank=True, verbose_name=_("escalated to")
    )
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-opened_at"]
        indexes = [
            models.Index(fields=["patient", "-opened_at"]),
            models.Index(
                fields=["escalate_at"],
                condition=Q(state__in=["open", "escalated"]),
                name="alert_escalation_due_idx",
            ),
        ]
        constraints = [
            # Belt and braces to the rule's `firing` flag: one unhandled alert per rule.
            models.UniqueConstraint(
                fields=["rule"],
                condition=Q(state__in=["open", "escalated"]),
                name="alert_one_unhandled_per_rule",
            ),
            models.CheckConstraint(
                condition=~Q(state="acknowledged") | Q(acknowledged_at__isnull=False),
                name="alert_acknowledged_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state="resolved") | Q(resolved_at__isnull=False),
                name="alert_resolved_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.summary} ({self.state})"

    @property
    def is_unhandled(self) -> bool:
        return self.state in self.UNHANDLED


class OnCallShift(models.Model):
    """Who is on call when, in which order: alerts nobody acknowledges escalate along it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="on_call_shifts"
    )
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"))
    rank = models.PositiveSmallIntegerField(
        _("order"), default=1, help_text=_("1 is called first, then 2, and so on.")
    )

    class Meta:
        verbose_name = _("on-call shift")
        verbose_name_plural = _("on-call shifts")
        ordering = ["starts_at", "rank"]
        indexes = [models.Index(fields=["starts_at", "ends_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="on_call_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} #{self.rank} {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%H:%M}"
