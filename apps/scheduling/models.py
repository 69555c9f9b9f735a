"""Agendas: who is available when and where, appointment types, appointments, waiting list.

Free slots are computed from the weekly availability rules minus exceptions and booked
appointments (`services/slots.py`), never stored: a rule change shows at once and nothing can
drift. Double booking is impossible at the database level: on PostgreSQL, exclusion
constraints (migration 0002) forbid two active appointments overlapping for the same clinician
or the same patient; the booking service also locks and checks, for clear messages.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from apps.core.models import FhirResource


class Mode(models.TextChoices):
    IN_PERSON = "in_person", _("in person")
    VIDEO = "video", _("video")


class Location(models.Model):
    """A place where in-person appointments happen (FHIR Location)."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="locations"
    )
    name = models.CharField(_("name"), max_length=120)
    address = models.TextField(_("address"), blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("location")
        verbose_name_plural = _("locations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AppointmentType(models.Model):
    """What can be booked: first visit or follow-up, video or in person, how long, by whom."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name (French)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120, blank=True)
    name_de = models.CharField(_("name (German)"), max_length=120, blank=True)
    minutes = models.PositiveSmallIntegerField(_("duration (minutes)"))
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices)
    first_visit = models.BooleanField(_("first visit"), default=False)
    # accounts.Role values of the professions that may deliver it.
    professions = models.JSONField(_("professions"), default=list)
    patient_bookable = models.BooleanField(_("patients may book it online"), default=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("appointment type")
        verbose_name_plural = _("appointment types")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(minutes__gte=5) & Q(minutes__lte=480), name="appointment_type_minutes"
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        language = (get_language() or "fr")[:2]
        return {"en": self.name_en, "de": self.name_de}.get(language, "") or self.name


class Schedule(FhirResource):
    """One clinician's agenda (FHIR Schedule)."""

    clinician = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="schedule"
    )
    specialty_code = models.CharField(_("specialty (SNOMED CT)"), max_length=20, blank=True)
    specialty = models.CharField(_("specialty"), max_length=120, blank=True)
    appointment_types = models.ManyToManyField(
        AppointmentType, related_name="schedules", verbose_name=_("appointment types")
    )
    active = models.BooleanField(_("active"), default=True)
    comment = models.CharField(_("comment"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")

    def __str__(self) -> str:
        return self.clinician.get_full_name()


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class AvailabilityRule(models.Model):
    """Every `weekday` from `starts` to `ends` (clinic wall-clock time), video or at a place."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="rules")
    weekday = models.PositiveSmallIntegerField(_("day"), choices=Weekday.choices)
    starts = models.TimeField(_("from"))
    ends = models.TimeField(_("until"))
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices)
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    valid_from = models.DateField(_("valid from"), default=timezone.localdate)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)

    class Meta:
        verbose_name = _("availability")
        verbose_name_plural = _("availabilities")
        ordering = ["weekday", "starts"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends__gt=models.F("starts")), name="rule_ends_after"
            ),
            models.CheckConstraint(
                condition=Q(mode="video", location__isnull=True)
                | Q(mode="in_person", location__isnull=False),
                name="rule_location_for_in_person",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=models.F("valid_from")),
                name="rule_valid_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.starts:%H:%M}–{self.ends:%H:%M}"


class AvailabilityException(models.Model):
    """Time off the agenda: holidays, absences, training (UTC instants)."""

    class Kind(models.TextChoices):
        HOLIDAY = "holiday", _("holiday")
        ABSENCE = "absence", _("absence")
        OTHER = "other", _("other")

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="exceptions")
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.ABSENCE)
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("unavailability")
        verbose_name_plural = _("unavailabilities")
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="exception_ends_after"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.starts_at:%Y-%m-%d}"


ACTIVE_STATUSES = ("proposed", "booked", "arrived")


class Appointment(FhirResource):
    """A booked time with a patient and one or more clinicians (FHIR Appointment)."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("proposed")
        BOOKED = "booked", _("booked")
        ARRIVED = "arrived", _("arrived")
        FULFILLED = "fulfilled", _("fulfilled")
        CANCELLED = "cancelled", _("cancelled")
        NOSHOW = "noshow", _("no-show")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="appointments"
    )
    type = models.ForeignKey(AppointmentType, on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.BOOKED
    )
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices)
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("booked"), default=timezone.now)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cancel_reason = models.CharField(_("cancellation reason"), max_length=300, blank=True)
    rescheduled_from = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rescheduled_to"
    )

    class Meta:
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        ordering = ["starts_at"]
        indexes = [
            models.Index(fields=["patient", "starts_at"]),
            models.Index(fields=["starts_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="appointment_ends_after"
            ),
        ]
        # On PostgreSQL, migration 0002 adds the exclusion constraint
        # `appointment_patient_no_overlap`: a patient is never in two places at once.

    def __str__(self) -> str:
        return f"{self.type} {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class Participant(models.Model):
    """A clinician taking part; the exclusion constraint makes double booking impossible."""

    class Role(models.TextChoices):
        PRIMARY = "primary", _("responsible")
        SECONDARY = "secondary", _("taking part")

    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="participants"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointment_roles"
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.PRIMARY)
    # Copies of the appointment's time and activity, so the constraint needs no join.
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("participant")
        verbose_name_plural = _("participants")
        indexes = [models.Index(fields=["user", "starts_at"])]
        constraints = [
            models.UniqueConstraint(fields=["appointment", "user"], name="participant_once"),
        ]
        # On PostgreSQL, migration 0002 adds the exclusion constraint
        # `participant_no_double_booking` (same user, overlapping time, both active).

    def __str__(self) -> str:
        return f"{self.user} in {self.appointment}"


class WaitingListEntry(models.Model):
    """A patient who wants an earlier slot; offered the first one that frees up."""

    class Status(models.TextChoices):
        WAITING = "waiting", _("waiting")
        OFFERED = "offered", _("offered")
        BOOKED = "booked", _("booked")
        EXPIRED = "expired", _("expired")
        WITHDRAWN = "withdrawn", _("withdrawn")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="waiting_list"
    )
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="waiting")
    type = models.ForeignKey(AppointmentType, on_delete=models.PROTECT, related_name="+")
    # The appointment the patient holds and would move earlier (optional).
    current = models.ForeignKey(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    earliest = models.DateTimeField(_("not before"), default=timezone.now)
    latest = models.DateTimeField(_("not after"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.WAITING
    )
    created_at = models.DateTimeField(default=timezone.now)
    offered_start = models.DateTimeField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("waiting-list entry")
        verbose_name_plural = _("waiting list")
        ordering = ["created_at"]
        indexes = [models.Index(fields=["schedule", "status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.patient} waiting for {self.schedule}"


class Reminder(models.Model):
    """One reminder sent: the unique key makes a second run of the task send nothing."""

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="reminders")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lead_minutes = models.PositiveIntegerField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "user", "lead_minutes"], name="reminder_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.appointment_id} -{self.lead_minutes} min"


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


class CalendarFeed(models.Model):
    """A private iCalendar feed URL (the token is the credential; revoking makes it 404)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("calendar feed")
        verbose_name_plural = _("calendar feeds")
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=Q(revoked_at__isnull=True), name="one_live_feed"
            )
        ]

    def __str__(self) -> str:
        return f"feed of {self.user}"


class FollowUpRequest(models.Model):
    """A follow-up someone asked for (a care plan, a clinician) that must be booked by a date.

    Linked to the appointment that fulfils it once one is booked; flagged overdue (and the
    requester told) when the date passes with nothing booked.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("to book")
        BOOKED = "booked", _("booked")
        OVERDUE = "overdue", _("overdue")
        CANCELLED = "cancelled", _("cancelled")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="follow_up_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    type = models.ForeignKey(
        AppointmentType, on_delete=models.PROTECT, related_name="+", verbose_name=_("type")
    )
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("with"),
    )
    due_by = models.DateField(_("to book by"))
    note = models.CharField(_("note"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("requested"), default=timezone.now)
    appointment = models.ForeignKey(
        Appointment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="follow_ups",
        verbose_name=_("appointment"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OPEN
    )

    class Meta:
        verbose_name = _("follow-up to book")
        verbose_name_plural = _("follow-ups to book")
        ordering = ["due_by", "pk"]
        indexes = [
            models.Index(fields=["status", "due_by"]),
            models.Index(fields=["patient", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="booked", appointment__isnull=False) | ~Q(status="booked"),
                name="follow_up_booked_has_appointment",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} by {self.due_by:%Y-%m-%d}"
