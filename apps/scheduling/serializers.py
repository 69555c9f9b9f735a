"""Serializers of the scheduling API (`/api/v1/`): types, free slots, appointments.

Instants are ISO 8601 in UTC; each also has a `local` twin in the clinic's zone
(`settings.TIME_ZONE`), so a client shows the clinic's wall-clock time without a zone table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Appointment, AppointmentType, Participant
from .services.slots import Slot, clinic_zone

MAX_RANGE_DAYS = 31


def utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def local(instant: dt.datetime) -> str:
    return instant.astimezone(clinic_zone()).isoformat()


class InstantField(serializers.DateTimeField):
    """An instant out as UTC (`…Z`); in as ISO 8601, naive values read in the clinic's zone."""

    def to_representation(self, value: Any) -> Any:
        return utc(value) if value is not None else None

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        if timezone.is_naive(value):
            return value.replace(tzinfo=clinic_zone())
        return value


@extend_schema_field(
    {"type": "string", "description": "A date (YYYY-MM-DD, a whole clinic day) or a date-time."}
)
class DateOrInstantField(serializers.Field):  # type: ignore[type-arg]
    """A date (a whole day in the clinic's zone) or an ISO 8601 date-time."""

    default_error_messages = {
        "invalid": _("Give a date (YYYY-MM-DD) or an ISO 8601 date-time."),
    }

    def __init__(self, *, day_end: bool = False, **kwargs: Any) -> None:
        self.day_end = day_end  # a date stands for the end of that day (the next midnight)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dt.datetime:
        text = str(data).strip().replace(" ", "+")  # "+" in a query string arrives as a space
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                if self.day_end:
                    day += dt.timedelta(days=1)
                return dt.datetime.combine(day, dt.time(), tzinfo=clinic_zone())
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail("invalid")
        return value if timezone.is_aware(value) else value.replace(tzinfo=clinic_zone())

    def to_representation(self, value: Any) -> str:
        return utc(value)


class AppointmentTypeSerializer(serializers.ModelSerializer[AppointmentType]):
    # A field named like Field.label: the serializer's metaclass takes it out of the class.
    label = serializers.CharField(  # type: ignore[assignment]
        read_only=True, help_text="The name in the request's language."
    )

    class Meta:
        model = AppointmentType
        fields = [
            "code",
            "label",
            "name",
            "name_en",
            "name_de",
            "minutes",
            "mode",
            "first_visit",
            "professions",
            "patient_bookable",
        ]


class SlotQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.SlugField(help_text="Appointment type code.")
    start = DateOrInstantField(help_text="A date (clinic zone) or an ISO 8601 date-time.")
    end = DateOrInstantField(
        day_end=True, help_text="A date (included, clinic zone) or an ISO 8601 date-time."
    )
    schedule = serializers.IntegerField(required=False, help_text="Only this schedule's slots.")
    specialty = serializers.CharField(
        required=False, help_text="Specialty (part of its name, or its SNOMED CT code)."
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=2000)

    def validate_type(self, value: str) -> AppointmentType:
        found = AppointmentType.objects.filter(code=value, active=True).first()
        if found is None:
            raise serializers.ValidationError(_("Unknown appointment type."))
        return found

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": _("The end must come after the start.")})
        if attrs["end"] - attrs["start"] > dt.timedelta(days=MAX_RANGE_DAYS):
            raise serializers.ValidationError(
                {"end": _("Search at most %(days)s days at a time.") % {"days": MAX_RANGE_DAYS}}
            )
        return attrs


class SlotSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A free slot; `clinician_name` and `location_name` come from the view's context."""

    start = serializers.SerializerMethodField()
    end = serializers.SerializerMethodField()
    local = serializers.SerializerMethodField(help_text="The start in the clinic's zone.")
    schedule = serializers.IntegerField(source="schedule_id")
    clinician = serializers.IntegerField(source="clinician_id")
    clinician_name = serializers.SerializerMethodField()
    mode = serializers.CharField()
    location = serializers.IntegerField(source="location_id", allow_null=True)
    location_name = serializers.SerializerMethodField()

    def get_start(self, slot: Slot) -> str:
        return utc(slot.starts_at)

    def get_end(self, slot: Slot) -> str:
        return utc(slot.ends_at)

    def get_local(self, slot: Slot) -> str:
        return local(slot.starts_at)

    def get_clinician_name(self, slot: Slot) -> str:
        return str(self.context.get("names", {}).get(slot.clinician_id, ""))

    def get_location_name(self, slot: Slot) -> str:
        return str(self.context.get("locations", {}).get(slot.location_id, ""))


class ParticipantSerializer(serializers.ModelSerializer[Participant]):
    name = serializers.CharField(source="user.get_full_name", read_only=True)
    profession = serializers.CharField(source="user.role_label", read_only=True)

    class Meta:
        model = Participant
        fields = ["user", "name", "profession", "role", "active"]


class AppointmentSerializer(serializers.ModelSerializer[Appointment]):
    """An appointment; `reason` (clinical) only for callers who may open the patient's record."""

    type = serializers.CharField(source="type.code", read_only=True)
    type_label = serializers.CharField(source="type.label", read_only=True)
    patient_name = serializers.SerializerMethodField()
    start = InstantField(source="starts_at", read_only=True)
    end = InstantField(source="ends_at", read_only=True)
    local = serializers.SerializerMethodField(help_text="The start in the clinic's zone.")
    location_name = serializers.CharField(source="location.name", read_only=True, default="")
    reason = serializers.SerializerMethodField()
    participants = ParticipantSerializer(many=True, read_only=True)
    created_at = InstantField(read_only=True)
    cancelled_at = InstantField(read_only=True)

    class Meta:
        model = Appointment
        fields = [
            "id",
            "patient",
            "patient_name",
            "type",
            "type_label",
            "status",
            "start",
            "end",
            "local",
            "mode",
            "location",
            "location_name",
            "reason",
            "participants",
            "created_at",
            "cancelled_at",
            "cancel_reason",
            "rescheduled_from",
        ]
        read_only_fields = fields

    def get_patient_name(self, obj: Appointment) -> str:
        return f"{obj.patient.given_names} {obj.patient.family_name}".strip()

    def get_local(self, obj: Appointment) -> str:
        return local(obj.starts_at)

    def get_reason(self, obj: Appointment) -> str:
        record_patients = self.context.get("record_patients")
        if record_patients is not None and obj.patient_id not in record_patients:
            return ""
        return obj.reason


class BookSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.SlugField(help_text="Appointment type code.")
    start = InstantField(help_text="ISO 8601; without an offset, the clinic's wall-clock time.")
    clinicians = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=1,
        max_length=5,
        help_text="User ids; the first is responsible (a patient books one).",
    )
    patient = serializers.IntegerField(
        required=False, help_text="Staff only: the patient booked for (a patient books for self)."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")

    def validate_type(self, value: str) -> AppointmentType:
        found = AppointmentType.objects.filter(code=value, active=True).first()
        if found is None:
            raise serializers.ValidationError(_("Unknown appointment type."))
        return found


class CancelSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class MoveSerializer(serializers.Serializer):  # type: ignore[type-arg]
    start = InstantField(help_text="The new start; the same clinicians and type.")


class StatusSerializer(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ChoiceField(
        choices=[
            Appointment.Status.ARRIVED,
            Appointment.Status.FULFILLED,
            Appointment.Status.NOSHOW,
        ]
    )


class SchedulingErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    detail = serializers.CharField()


class SlotTakenSerializer(serializers.Serializer):  # type: ignore[type-arg]
    detail = serializers.CharField()
    alternatives = SlotSerializer(many=True)
