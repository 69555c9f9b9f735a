"""REST API of scheduling (`/api/v1/`): appointment types, free slots, appointments.

Every appointment goes through the booking services' gate (`access_for_booking`,
`get_appointment_for_user`): a patient sees and changes only their own, clinical staff those of
their care teams' patients; anyone else gets 404 and the denial is audited. Errors of a booking
or change answer 400 `{"detail": message}`; a slot someone else just took answers 409 with the
next free `alternatives`.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Prefetch, Q, QuerySet
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import patients_for_user
from apps.records.api import Pages
from apps.records.models import Patient

from .models import Appointment, AppointmentType, Location, Participant
from .serializers import (
    AppointmentSerializer,
    AppointmentTypeSerializer,
    BookSerializer,
    CancelSerializer,
    DateOrInstantField,
    MoveSerializer,
    SchedulingErrorSerializer,
    SlotQuerySerializer,
    SlotSerializer,
    SlotTakenSerializer,
    StatusSerializer,
)
from .services import SchedulingError, SlotTaken
from .services.booking import (
    access_for_booking,
    do_book_appointment,
    do_cancel_appointment,
    do_reschedule_appointment,
    do_set_status,
    get_appointment_for_user,
)
from .services.slots import Slot, free_slots

NOT_FOUND = OpenApiResponse(description="No such appointment, or not yours to see (audited).")
REFUSED = OpenApiResponse(SchedulingErrorSerializer, description="Not allowed; `detail` says why.")


def slot_context(slots: list[Slot]) -> dict[str, Any]:
    """The clinicians' and locations' names the slot serializer shows (two queries)."""
    names = {
        user.pk: user.get_full_name()
        for user in User.objects.filter(pk__in={s.clinician_id for s in slots})
    }
    locations = dict(
        Location.objects.filter(pk__in={s.location_id for s in slots if s.location_id})
        .values_list("pk", "name")
        .order_by()
    )
    return {"names": names, "locations": locations}


def _refused(error: SchedulingError) -> Response:
    if isinstance(error, SlotTaken):
        alternatives = list(error.alternatives)
        return Response(
            {
                "detail": str(error),
                "alternatives": SlotSerializer(
                    alternatives, many=True, context=slot_context(alternatives)
                ).data,
            },
            status=status.HTTP_409_CONFLICT,
        )
    return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)


class AppointmentTypeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[AppointmentType]):
    """The appointment types that can be booked (active ones)."""

    serializer_class = AppointmentTypeSerializer
    pagination_class = Pages

    def get_queryset(self) -> QuerySet[AppointmentType]:
        return AppointmentType.objects.filter(active=True).order_by("name", "pk")


class SlotViewSet(viewsets.GenericViewSet[Any]):
    """Free slots, computed from the agendas (never stored)."""

    serializer_class = SlotSerializer
    pagination_class = Pages

    @extend_schema(
        parameters=[SlotQuerySerializer],
        responses={200: SlotSerializer(many=True), 400: OpenApiResponse(description="Bad query.")},
        description=(
            "Free slots of an appointment type between `start` and `end` (at most 31 days), "
            "for every schedule offering the type, one schedule, or one specialty. Online "
            "booking's minimum notice applies. Times are UTC; `local` is the clinic's time."
        ),
    )
    def list(self, request: Request) -> Response:
        query = SlotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        slots = free_slots(
            params["type"],
            params["start"],
            params["end"],
            schedules=[params["schedule"]] if "schedule" in params else None,
            specialty=params.get("specialty", ""),
        )
        page = cast(list[Slot] | None, self.paginate_queryset(slots))  # type: ignore[arg-type]
        assert page is not None  # noqa: S101 - Pages always pages
        data = SlotSerializer(page, many=True, context=slot_context(page)).data
        return self.get_paginated_response(data)


class AppointmentQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    start = DateOrInstantField(required=False, help_text="Appointments ending after this.")
    end = DateOrInstantField(
        required=False, day_end=True, help_text="Appointments starting before this."
    )
    status = serializers.MultipleChoiceField(
        choices=Appointment.Status.choices, required=False, help_text="Repeat for several."
    )
    patient = serializers.IntegerField(required=False, help_text="One patient's appointments.")


def _participants() -> Prefetch[Any]:
    return Prefetch(
        "participants", queryset=Participant.objects.select_related("user").order_by("role", "pk")
    )


@extend_schema_view(
    list=extend_schema(
        parameters=[AppointmentQuerySerializer],
        description=(
            "A patient's own appointments; for clinical staff, those of the patients of their "
            "care teams and those they take part in. `reason` is empty where the caller may "
            "not open the patient's record."
        ),
    ),
    retrieve=extend_schema(responses={200: AppointmentSerializer, 404: NOT_FOUND}),
)
class AppointmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Appointment]
):
    """Appointments: list, read, book, cancel, move, record arrival / end / no-show."""

    serializer_class = AppointmentSerializer
    pagination_class = Pages
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[Appointment]:
        appointments = Appointment.objects.select_related("patient", "type", "location")
        if getattr(self, "swagger_fake_view", False):
            return appointments.none()
        user: Any = self.request.user
        if user.is_patient:
            appointments = appointments.filter(patient__user=user)
        elif user.role in CLINICAL_ROLES:
            appointments = appointments.filter(
                Q(patient_id__in=patients_for_user(user).values("pk"))
                | Q(pk__in=Participant.objects.filter(user=user).values("appointment_id"))
            )
        else:
            return appointments.none()
        return appointments.prefetch_related(_participants()).order_by("starts_at", "pk")

    def _user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = AppointmentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        appointments = self.get_queryset()
        if "patient" in params:
            # The gate: someone else's patient is a 404, audited like every denial.
            access_for_booking(self._user(), params["patient"], request=request._request)
            appointments = appointments.filter(patient_id=params["patient"])
        if "start" in params:
            appointments = appointments.filter(ends_at__gt=params["start"])
        if "end" in params:
            appointments = appointments.filter(starts_at__lt=params["end"])
        if params.get("status"):
            appointments = appointments.filter(status__in=sorted(params["status"]))
        page = self.paginate_queryset(appointments)
        assert page is not None  # noqa: S101 - Pages always pages
        patients = {a.patient_id for a in page}
        audit(
            Action.READ,
            request=request._request,
            actor=self._user(),
            object_type="scheduling.appointment",
            patient_id=str(next(iter(patients))) if len(patients) == 1 else "",
            detail={"what": "api-appointments", "count": len(page), "patients": len(patients)},
        )
        context = {**self.get_serializer_context(), "record_patients": self._records(patients)}
        return self.get_paginated_response(
            AppointmentSerializer(page, many=True, context=context).data
        )

    def _records(self, patient_ids: set[int]) -> set[int] | None:
        """Of these patients, those whose record the caller may open (None: all of them)."""
        user = self._user()
        if user.is_patient:
            return None
        return set(patients_for_user(user).filter(pk__in=patient_ids).values_list("pk", flat=True))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        appointment, _access = get_appointment_for_user(
            self._user(), kwargs["pk"], request=request._request
        )
        return Response(AppointmentSerializer(appointment).data)

    @extend_schema(
        request=BookSerializer,
        responses={
            201: AppointmentSerializer,
            400: REFUSED,
            404: OpenApiResponse(description="Not your patient (audited)."),
            409: OpenApiResponse(SlotTakenSerializer, description="Taken: other free slots."),
        },
        description=(
            "Book. A patient books for themself, one professional, on the grid of free slots; "
            "clinical staff name the `patient` and may book any start inside the "
            "professionals' availability, several professionals for a joint appointment "
            "(the first is responsible)."
        ),
    )
    def create(self, request: Request) -> Response:
        form = BookSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = self._user()
        patient_id = data.get("patient")
        if user.is_patient and patient_id is None:
            patient_id = Patient.objects.filter(user=user).values_list("pk", flat=True).first()
            if patient_id is None:
                raise ValidationError({"patient": [_("Your account has no patient record.")]})
        elif patient_id is None:
            raise ValidationError({"patient": [_("Choose the patient.")]})
        access = access_for_booking(user, patient_id, request=request._request)
        found = User.objects.filter(pk__in=data["clinicians"], is_active=True).in_bulk()
        if len(found) != len(set(data["clinicians"])):
            raise ValidationError({"clinicians": [_("Unknown professional.")]})
        try:
            appointment = do_book_appointment(
                access,
                data["type"],
                data["start"],
                [found[pk] for pk in data["clinicians"]],
                reason=data["reason"],
                request=request._request,
            )
        except SchedulingError as error:
            return _refused(error)
        return self._created(appointment)

    def _created(self, appointment: Appointment) -> Response:
        appointment = self.get_queryset().get(pk=appointment.pk)
        return Response(
            AppointmentSerializer(appointment).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:appointment-detail", args=[appointment.pk])},
        )

    @extend_schema(
        request=CancelSerializer,
        responses={200: AppointmentSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Cancel (a patient: until the clinic's limit before the appointment).",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        appointment, access = get_appointment_for_user(
            self._user(), pk, request=request._request, action=None
        )
        form = CancelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            appointment = do_cancel_appointment(
                access, appointment, reason=form.validated_data["reason"], request=request._request
            )
        except SchedulingError as error:
            return _refused(error)
        return Response(AppointmentSerializer(self.get_queryset().get(pk=appointment.pk)).data)

    @extend_schema(
        request=MoveSerializer,
        responses={
            201: AppointmentSerializer,
            400: REFUSED,
            404: NOT_FOUND,
            409: OpenApiResponse(SlotTakenSerializer, description="Taken: other free slots."),
        },
        description=(
            "Move to a new start with the same professionals: the answer is the new "
            "appointment (a new id); the old one is cancelled and points to it."
        ),
    )
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str) -> Response:
        appointment, access = get_appointment_for_user(
            self._user(), pk, request=request._request, action=None
        )
        form = MoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            moved = do_reschedule_appointment(
                access, appointment, form.validated_data["start"], request=request._request
            )
        except SchedulingError as error:
            return _refused(error)
        return self._created(moved)

    @extend_schema(
        request=StatusSerializer,
        responses={
            200: AppointmentSerializer,
            400: REFUSED,
            403: OpenApiResponse(description="Patients cannot record this."),
            404: NOT_FOUND,
        },
        description="Staff record the arrival, the end (fulfilled) or a no-show.",
    )
    @action(detail=True, methods=["post"])
    def status(self, request: Request, pk: str) -> Response:
        user = self._user()
        appointment, access = get_appointment_for_user(
            user, pk, request=request._request, action=None
        )
        form = StatusSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        if user.is_patient:
            raise PermissionDenied(_("Only the clinic records arrivals and no-shows."))
        try:
            appointment = do_set_status(
                access, appointment, form.validated_data["status"], request=request._request
            )
        except SchedulingError as error:
            return _refused(error)
        return Response(AppointmentSerializer(self.get_queryset().get(pk=appointment.pk)).data)
