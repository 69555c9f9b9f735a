"""Care coordination as FHIR CarePlan, Task, Questionnaire and QuestionnaireResponse (read and
search; Task is also written).

CarePlan, Task and QuestionnaireResponse are in their patient's compartment (patient_path
"patient"): `scope.py` lets through the patient's own token, staff tokens for the patients of
their care teams (and current emergency accesses, as the portal does: `apps.care.access`), and
system tokens by their scopes; billing staff get none of them (not administrative data). The
care access rule narrows that further (`restrict`):
- a patient's token: their care plans (not the drafts their team is still writing) and their
  questionnaire responses, never the Tasks (the team's working notes);
- a staff token: all three, for the clinicians of the patients it may open;
- a system token: every row its scopes name.
Questionnaire is reference data (the forms), readable by any caller with a Questionnaire scope.
The mapping is `apps.care.fhir`; work on plans happens in the portals. Tasks are also created
and updated (status, owner, new notes) by clinicians' tokens, through the care services
(`persist_care`); system and patient tokens may not write them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Model, QuerySet, Value
from django.db.models.functions import Cast, Concat

from apps.care.fhir import (
    QUESTIONNAIRE_URL,
    SYS_QUESTIONNAIRE,
    SYS_TASK_KIND,
    careplan_to_fhir,
    plans_with_related,
    questionnaire_to_fhir,
    response_to_fhir,
    responses_with_related,
    task_to_fhir,
    tasks_with_related,
)
from apps.care.models import CarePlan, Questionnaire, QuestionnaireResponse, Task
from apps.records.fhir import SYS_USER

from .auth import PATIENT, Caller
from .registry import DATE, REFERENCE, STRING, TOKEN, ResourceType, SearchParam, register

ANSWERS_STATUS = "http://hl7.org/fhir/questionnaire-answers-status"


class CarePlanType(ResourceType):
    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        return plans_with_related(super().queryset(model))

    def restrict(self, caller: Caller, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if caller.kind == PATIENT:
            return queryset.exclude(status=CarePlan.Status.DRAFT)
        return queryset


class TaskType(ResourceType):
    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        # The people as text, so that `owner=<account id>` never fails a cast.
        return tasks_with_related(super().queryset(model)).annotate(
            fhir_owner_user=Cast("assignee_id", CharField()),
            fhir_requester_user=Cast("requester_id", CharField()),
        )

    def restrict(self, caller: Caller, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if caller.kind == PATIENT:
            return queryset.none()
        return queryset


class QuestionnaireResponseType(ResourceType):
    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        completed = Value("completed", output_field=CharField())
        return responses_with_related(super().queryset(model)).annotate(fhir_status=completed)


class QuestionnaireType(ResourceType):
    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        url = Concat(Value(QUESTIONNAIRE_URL), "code", output_field=CharField())
        return super().queryset(model).annotate(fhir_url=url)


def _common(*params: SearchParam, patient: bool = True) -> dict[str, SearchParam]:
    """`_id`, `_lastUpdated`, and `patient`/`subject` for patient data, then the type's own."""
    found = {
        "_id": SearchParam("_id", TOKEN, ("fhir_id",)),
        "_lastUpdated": SearchParam("_lastUpdated", DATE, ("updated_at",), sortable=True),
    }
    if patient:
        for name in ("patient", "subject"):
            found[name] = SearchParam(name, REFERENCE, ("patient__fhir_id",), targets=("Patient",))
    found.update((p.name, p) for p in params)
    return found


def _person(name: str, column: str, annotation: str) -> SearchParam:
    return SearchParam(
        name,
        REFERENCE,
        (f"{column}__practitioner__fhir_id",),
        targets=("Practitioner",),
        identifier=f"={SYS_USER}|{annotation}",
        documentation=(
            f"Practitioner/<id>, or the person's account: {SYS_USER}|<account id> (also "
            "for staff without a Practitioner resource)."
        ),
    )


register(
    CarePlanType(
        "CarePlan",
        (CarePlan,),
        careplan_to_fhir,
        patient_path="patient",
        params=_common(
            SearchParam(
                "status",
                TOKEN,
                ("status",),
                documentation="draft, active, on-hold, completed, revoked.",
            ),
            SearchParam(
                "date", DATE, ("start_date",), sortable=True, documentation="The plan's start."
            ),
        ),
        default_sort="-created_at",
        includes=("patient",),
    )
)
register(
    TaskType(
        "Task",
        (Task,),
        task_to_fhir,
        patient_path="patient",
        params=_common(
            SearchParam(
                "status",
                TOKEN,
                ("status",),
                documentation="requested, in-progress, on-hold, completed, cancelled.",
            ),
            SearchParam(
                "code",
                TOKEN,
                (f"={SYS_TASK_KIND}|kind",),
                documentation=(
                    f"The kind of task ({SYS_TASK_KIND}: call, wound-care, review-results, "
                    "medication-review, exam, visit, education, handover, other)."
                ),
            ),
            SearchParam("priority", TOKEN, ("priority",)),
            _person("owner", "assignee", "fhir_owner_user"),
            _person("requester", "requester", "fhir_requester_user"),
            SearchParam("based-on", REFERENCE, ("plan__fhir_id",), targets=("CarePlan",)),
            SearchParam("authored-on", DATE, ("created_at",), sortable=True),
            SearchParam("modified", DATE, ("updated_at",), sortable=True),
            SearchParam(
                "period", DATE, ("due_at",), sortable=True, documentation="The task's due time."
            ),
        ),
        default_sort="-created_at",
        includes=("patient",),
        writable=True,
    )
)
register(
    QuestionnaireResponseType(
        "QuestionnaireResponse",
        (QuestionnaireResponse,),
        response_to_fhir,
        patient_path="patient",
        params=_common(
            SearchParam(
                "status",
                TOKEN,
                (f"={ANSWERS_STATUS}|fhir_status",),
                documentation="Always completed (a response is stored when it is sent).",
            ),
            SearchParam("authored", DATE, ("authored_at",), sortable=True),
            SearchParam(
                "questionnaire",
                REFERENCE,
                ("questionnaire__fhir_id",),
                targets=("Questionnaire",),
            ),
        ),
        default_sort="-authored_at",
        includes=("patient",),
    )
)
register(
    QuestionnaireType(
        "Questionnaire",
        (Questionnaire,),
        questionnaire_to_fhir,
        patient_path=None,
        params=_common(
            SearchParam(
                "url",
                TOKEN,
                ("fhir_url",),
                documentation=f"The canonical URL: {QUESTIONNAIRE_URL}<code>.",
            ),
            SearchParam(
                "identifier",
                TOKEN,
                (f"={SYS_QUESTIONNAIRE}|code",),
                documentation=f"The questionnaire's code ({SYS_QUESTIONNAIRE}|<code>).",
            ),
            SearchParam("status", TOKEN, ("status",), documentation="draft, active, retired."),
            SearchParam("name", STRING, ("code",), documentation="The code (machine name)."),
            SearchParam("title", STRING, ("title", "title_en", "title_de")),
            patient=False,
        ),
        default_sort="title",
    )
)
