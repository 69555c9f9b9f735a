"""REST API of care coordination under /api/v1/.

- `care-plans/`: the caller's plans (a patient: their own, not the drafts; a clinician: those of
  the patients of their care teams), each with its goals and activities.
- `tasks/` (api_tasks.py): clinicians only: list with filters (`mine`, patient, status,
  priority, kind, overdue), create, and on one task assign, start, complete, cancel, add a note.
- `questionnaire-requests/`: the patient's questionnaires waiting for an answer; answer one.
- `doses/`: the patient's medication doses (upcoming, recent); answer taken or skipped.
- `proposals/`: clinicians: a patient's decision-support proposals; accept or dismiss one.

Every read goes through `apps.care.access` / `apps.records.access` and is audited (a list: one
row per page); anyone else gets 404 and the refusal is audited. Changes call the care services,
which audit them; a change they refuse answers 400 `{"detail": message}`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Case, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import (
    PatientAccess,
    deny,
    get_item_for_user,
    get_patient_for_user,
    patients_for_user,
)
from apps.records.api import Pages

from .access import (
    get_plan_for_user,
    get_proposal_for_user,
    is_clinician,
)
from .models import (
    Activity,
    CarePlan,
    DoseReminder,
    Goal,
    Proposal,
    QuestionnaireRequest,
)
from .serializers import (
    AcceptSerializer,
    AnswersSerializer,
    CareErrorSerializer,
    CarePlanDetailSerializer,
    CarePlanSerializer,
    DoseAnswerSerializer,
    DoseQuerySerializer,
    DoseSerializer,
    PlanQuerySerializer,
    ProposalQuerySerializer,
    ProposalSerializer,
    QuestionnaireRequestSerializer,
    ReasonSerializer,
)
from .services import CareError
from .services.followup_items import AnswerErrors
from .services.plans import with_progress
from .services.questionnaires import do_answer_questionnaire
from .services.reminders import do_answer_dose
from .services.support.proposals import do_accept_proposal, do_dismiss_proposal

NOT_FOUND = OpenApiResponse(description="No such row, or not yours to see (audited).")
REFUSED = OpenApiResponse(CareErrorSerializer, description="Not possible; `detail` says why.")
RECENT_DOSES_DAYS = 30


def refused(error: CareError) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)


def _audit_listing(
    user: User, rows: list[Any], *, request: HttpRequest, object_type: str, what: str
) -> None:
    """One audit row for a page of a list (the patients it showed)."""
    patients = {row.patient_id for row in rows}
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type=object_type,
        patient_id=str(next(iter(patients))) if len(patients) == 1 else "",
        detail={"what": what, "count": len(rows), "patients": len(patients)},
    )


class CareViewSet(viewsets.GenericViewSet[Any]):
    """What the care viewsets share: the caller, the gate for their audience, paging."""

    pagination_class = Pages
    lookup_value_regex = r"\d+"
    # Who may use the endpoint at all: "patient", "clinician" or both.
    audience: tuple[str, ...] = ()
    what = ""

    def _user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    def _http(self) -> HttpRequest:
        return self.request._request

    def _gate(self) -> User:
        """The caller if the endpoint is for them, else an audited 404."""
        user = self._user()
        allowed = ("patient" in self.audience and user.is_patient) or (
            "clinician" in self.audience and is_clinician(user)
        )
        if not allowed:
            raise deny(user, request=self._http(), what=self.what)
        return user

    def _patient(self, patient_id: int) -> PatientAccess:
        """The caller's access to one patient (404 and audited if none; the read audited)."""
        return get_patient_for_user(self._user(), patient_id, request=self._http(), what=self.what)

    def _page(self, queryset: QuerySet[Any], object_type: str) -> list[Any]:
        page = self.paginate_queryset(queryset)
        assert page is not None  # noqa: S101 - Pages always pages
        rows = list(page)
        _audit_listing(
            self._user(), rows, request=self._http(), object_type=object_type, what=self.what
        )
        return rows


def colleague(pk: int | None) -> User | None:
    """The user named by id in a request (None for null); an unknown id is a 400."""
    if pk is None:
        return None
    found = User.objects.filter(pk=pk).first()
    if found is None:
        raise ValidationError({"assignee": [_("Unknown colleague.")]})
    return found


# ---------------------------------------------------------------------------------------------
# Care plans


class CarePlanViewSet(CareViewSet):
    serializer_class = CarePlanSerializer
    audience = ("patient", "clinician")
    what = "api-care-plans"

    def get_queryset(self) -> QuerySet[CarePlan]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return CarePlan.objects.none()
        return with_progress(
            CarePlan.objects.select_related("patient", "pathway", "coordinator")
        ).order_by("-start_date", "-pk")

    @extend_schema(
        parameters=[PlanQuerySerializer],
        responses={200: CarePlanSerializer(many=True), 404: NOT_FOUND},
        description=(
            "Care plans, latest first: a patient's own (not the drafts their team is "
            "writing); for a clinician, those of the patients of their care teams. `patient` "
            "names one patient (404, audited, if not theirs)."
        ),
    )
    def list(self, request: Request) -> Response:
        user = self._gate()
        query = PlanQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        plans = self.get_queryset()
        if "patient" in params:
            access = self._patient(params["patient"])
            plans = plans.filter(patient=access.patient)
        elif user.is_patient:
            plans = plans.filter(patient__user=user)
        else:
            plans = plans.filter(patient__in=patients_for_user(user).values("pk"))
        if user.is_patient:
            plans = plans.exclude(status=CarePlan.Status.DRAFT)
        if "status" in params:
            plans = plans.filter(status=params["status"])
        rows = self._page(plans, "care.careplan")
        return self.get_paginated_response(CarePlanSerializer(rows, many=True).data)

    @extend_schema(responses={200: CarePlanDetailSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, pk: str) -> Response:
        user = self._gate()
        queryset = self.get_queryset().prefetch_related(
            Prefetch("goals", queryset=Goal.objects.order_by("order", "pk")),
            Prefetch(
                "activities",
                queryset=Activity.objects.select_related("responsible").order_by(
                    "order", "due_date", "pk"
                ),
            ),
        )
        plan, access = get_plan_for_user(user, pk, request=self._http(), queryset=queryset)
        if access.is_patient_self and plan.status == CarePlan.Status.DRAFT:
            raise deny(
                user,
                request=self._http(),
                what=self.what,
                object_type="care.careplan",
                object_id=pk,
                patient_id=plan.patient_id,
            )
        return Response(CarePlanDetailSerializer(plan).data)


# ---------------------------------------------------------------------------------------------
# The patient's follow-up


class PatientOwnViewSet(CareViewSet):
    """Rows of the signed-in patient only (their questionnaires, their doses)."""

    audience = ("patient",)
    model: type[Any] = QuestionnaireRequest

    def _own(self, pk: str) -> Any:
        user = self._gate()
        item, access = get_item_for_user(user, self.model, pk, request=self._http(), what=self.what)
        if not access.is_patient_self:
            raise deny(
                user,
                request=self._http(),
                what=self.what,
                object_type=self.model._meta.label_lower,
                object_id=pk,
                patient_id=access.patient.pk,
            )
        return item


class QuestionnaireRequestViewSet(PatientOwnViewSet):
    serializer_class = QuestionnaireRequestSerializer
    model = QuestionnaireRequest
    what = "api-questionnaire-requests"

    def get_queryset(self) -> QuerySet[QuestionnaireRequest]:
        if getattr(self, "swagger_fake_view", False):
            return QuestionnaireRequest.objects.none()
        return QuestionnaireRequest.objects.select_related("questionnaire")

    @extend_schema(
        responses={200: QuestionnaireRequestSerializer(many=True), 404: NOT_FOUND},
        description="The caller's questionnaires waiting for an answer, the most urgent first.",
    )
    def list(self, request: Request) -> Response:
        user = self._gate()
        now = timezone.now()
        waiting = (
            self.get_queryset()
            .filter(patient__user=user, status=QuestionnaireRequest.Status.SENT, expires_at__gt=now)
            .order_by("expires_at", "pk")
        )
        rows = self._page(waiting, "care.questionnairerequest")
        data = QuestionnaireRequestSerializer(rows, many=True, context={"now": now}).data
        return self.get_paginated_response(data)

    @extend_schema(responses={200: QuestionnaireRequestSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, pk: str) -> Response:
        item = self._own(pk)
        row = self.get_queryset().get(pk=item.pk)
        return Response(QuestionnaireRequestSerializer(row).data)

    @extend_schema(
        request=AnswersSerializer,
        responses={201: QuestionnaireRequestSerializer, 400: REFUSED, 404: NOT_FOUND},
        description=(
            "Answer the questionnaire once. Answers that do not fit a question give 400 with "
            "`errors` {link_id: message}. An answer the team must see is passed on to them."
        ),
    )
    @action(detail=True, methods=["post"])
    def answer(self, request: Request, pk: str) -> Response:
        item = self._own(pk)
        form = AnswersSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        request_obj = self.get_queryset().select_related("patient", "plan").get(pk=item.pk)
        try:
            do_answer_questionnaire(
                self._user(), request_obj, form.validated_data["answers"], request=self._http()
            )
        except AnswerErrors as error:
            return Response(
                {"detail": str(error), "errors": error.errors}, status=status.HTTP_400_BAD_REQUEST
            )
        except CareError as error:
            return refused(error)
        row = self.get_queryset().get(pk=item.pk)
        return Response(QuestionnaireRequestSerializer(row).data, status=status.HTTP_201_CREATED)


class DoseViewSet(PatientOwnViewSet):
    serializer_class = DoseSerializer
    model = DoseReminder
    what = "api-doses"

    def get_queryset(self) -> QuerySet[DoseReminder]:
        if getattr(self, "swagger_fake_view", False):
            return DoseReminder.objects.none()
        return DoseReminder.objects.select_related("line__medication")

    @extend_schema(
        parameters=[DoseQuerySerializer],
        responses={200: DoseSerializer(many=True), 404: NOT_FOUND},
        description=(
            "The caller's medication doses: `upcoming` (still to take or to answer, soonest "
            "first) or `recent` (answered or missed in the last 30 days, newest first)."
        ),
    )
    def list(self, request: Request) -> Response:
        user = self._gate()
        query = DoseQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        now = timezone.now()
        doses = self.get_queryset().filter(patient__user=user)
        if query.validated_data["when"] == "upcoming":
            doses = doses.filter(
                status__in=(DoseReminder.Status.PLANNED, DoseReminder.Status.SENT)
            ).order_by("scheduled_for", "pk")
        else:
            since = now - dt.timedelta(days=RECENT_DOSES_DAYS)
            doses = doses.filter(
                ~Q(status__in=(DoseReminder.Status.PLANNED, DoseReminder.Status.SENT)),
                scheduled_for__gte=since,
            ).order_by("-scheduled_for", "-pk")
        rows = self._page(doses, "care.dosereminder")
        return self.get_paginated_response(
            DoseSerializer(rows, many=True, context={"now": now}).data
        )

    @extend_schema(responses={200: DoseSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, pk: str) -> Response:
        item = self._own(pk)
        return Response(DoseSerializer(self.get_queryset().get(pk=item.pk)).data)

    @extend_schema(
        request=DoseAnswerSerializer,
        responses={200: DoseSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Say the dose was taken, or skipped (with an optional reason); once.",
    )
    @action(detail=True, methods=["post"])
    def answer(self, request: Request, pk: str) -> Response:
        item = self._own(pk)
        form = DoseAnswerSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            do_answer_dose(
                self._user(),
                item,
                data["answer"] == "taken",
                data["reason"],
                request=self._http(),
            )
        except CareError as error:
            return refused(error)
        return Response(DoseSerializer(self.get_queryset().get(pk=item.pk)).data)


# ---------------------------------------------------------------------------------------------
# Decision support


class ProposalViewSet(CareViewSet):
    serializer_class = ProposalSerializer
    audience = ("clinician",)
    what = "api-proposals"

    def get_queryset(self) -> QuerySet[Proposal]:
        if getattr(self, "swagger_fake_view", False):
            return Proposal.objects.none()
        return Proposal.objects.select_related("rule", "decided_by")

    def _proposal(self, pk: str, *, audited: bool = False) -> tuple[Proposal, PatientAccess]:
        self._gate()
        return get_proposal_for_user(
            self._user(),
            pk,
            request=self._http(),
            action=Action.READ if audited else None,
            queryset=self.get_queryset(),
        )

    @extend_schema(
        parameters=[ProposalQuerySerializer],
        responses={200: ProposalSerializer(many=True), 404: NOT_FOUND},
        description=(
            "A patient's decision-support proposals, open ones first, newest first; each with "
            "its reason and the data it used."
        ),
    )
    def list(self, request: Request) -> Response:
        self._gate()
        query = ProposalQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        access = self._patient(params["patient"])
        proposals = self.get_queryset().filter(patient=access.patient)
        if "status" in params:
            proposals = proposals.filter(status=params["status"])
        open_rank = Case(
            When(status=Proposal.Status.OPEN, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        open_first = proposals.annotate(open_rank=open_rank).order_by(
            "open_rank", "-created_at", "-pk"
        )
        rows = self._page(open_first, "care.proposal")
        return self.get_paginated_response(ProposalSerializer(rows, many=True).data)

    @extend_schema(responses={200: ProposalSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, pk: str) -> Response:
        proposal, _access = self._proposal(pk, audited=True)
        return Response(ProposalSerializer(proposal).data)

    def _decide(self, pk: str, change: Any) -> Response:
        proposal, access = self._proposal(pk)
        try:
            change(proposal, access)
        except CareError as error:
            return refused(error)
        return Response(ProposalSerializer(self.get_queryset().get(pk=proposal.pk)).data)

    @extend_schema(
        request=AcceptSerializer,
        responses={200: ProposalSerializer, 400: REFUSED, 404: NOT_FOUND},
        description=(
            "Accept: creates the task (for `assignee`, else yourself) or, for a prescription "
            "change, a draft prescription for a physician to sign. Nothing is applied by itself."
        ),
    )
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        form = AcceptSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        assignee = colleague(form.validated_data["assignee"])
        return self._decide(
            pk,
            lambda proposal, access: do_accept_proposal(
                access, proposal, assignee=assignee, request=self._http()
            ),
        )

    @extend_schema(
        request=ReasonSerializer,
        responses={200: ProposalSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Dismiss with the reason; the same finding is not proposed again.",
    )
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str) -> Response:
        form = ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        reason = form.validated_data["reason"]
        return self._decide(
            pk,
            lambda proposal, access: do_dismiss_proposal(
                access, proposal, reason, request=self._http()
            ),
        )
