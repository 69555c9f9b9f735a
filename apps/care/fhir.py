"""FHIR R4 mapping of care coordination (read only, written in the portals; but Task, which the
FHIR API also creates and updates: see below).

CarePlan                CarePlan
  fhir_id, version,     id, meta.versionId, meta.lastUpdated (as every mapping)
  updated_at
  status                status (draft | active | on-hold | completed | revoked: the same codes)
  (always)              intent = plan
  pathway, its version  instantiatesCanonical = CANONICAL/PlanDefinition/<code>|<version> (the
                        pathway template, versioned; we do not serve PlanDefinition)
  title / description   title / description
  patient               subject = Patient/<id>
  start / end date      period.start / period.end
  created_at            created
  coordinator           author (Practitioner/<id> when they have one, always the account
                        identifier SYS_USER); else the plan's writer
  (patient's team)      careTeam = the patient's CareTeam (the active one, the oldest first)
  follow-up interval    extension ext:follow-up-interval (valueDuration, days) and
                        ext:next-follow-up (valueDate)
  goals                 contained Goal resources ("#goal-<pk>"), referenced from goal[]: a goal
                        is part of its plan (it has no id or version of its own), so it is not a
                        separate resource. Goal: lifecycleStatus (proposed | active | completed
                        + achievementStatus achieved | cancelled), description.text, subject,
                        target[0]: measure = the measurement's code (system from the records'
                        codes), detailRange low/high in its unit, dueDate
  activities            activity[].detail: kind (Task, Appointment, ServiceRequest for remote
                        monitoring, MedicationRequest, CommunicationRequest for education, Task
                        for a questionnaire), code = SYS_ACTIVITY_KIND|<kind> with the title as
                        text, description = detail, status (the same codes), scheduledPeriod.end
                        = due date, or scheduledTiming (event = due date, repeat every N days)
                        when it repeats, performer = the responsible professional, or
                        ext:responsible-role (SYS_ROLE) when only a profession is named;
                        ext:origin (manual, template, meeting, decision-support);
                        outcomeReference = the Tasks made for the activity. No `addresses`,
                        no `basedOn`.

Task                    Task (the team's working notes: never served to a patient's token)
  status / priority     status / priority (the same codes); cancel reason → statusReason.text
  (always)              intent = order
  kind                  code = SYS_TASK_KIND|<kind> (display in English)
  title                 description
  patient               for = Patient/<id>
  plan                  basedOn = CarePlan/<id>
  requester / assignee  requester / owner (people as in CarePlan.author)
  assignee_role         performerType = SYS_ROLE|<role> (an unassigned task waits for anyone of
                        that profession on the care team)
  started / completed   executionPeriod.start / .end
  due_at                restriction.period.end
  created_at            authoredOn; updated_at → lastModified
  instructions, notes   note[]: the instructions first (by the requester), then each note passed
                        between professionals (author, time)
  report                output[0]: type SYS_TASK_OUTPUT|report, valueString
  origin                ext:origin
  Written through the FHIR API (`apps.interop.fhir_api.persist_care`) by clinicians' tokens,
  always through the care services: create reads this mapping backwards (status requested,
  requester = the token's person, note[0] = instructions); update changes the status (start,
  hold, complete with output[0].valueString, cancel with statusReason.text), the owner (claim,
  hand-over; performerType alone: to a profession) and adds notes at the end; any other
  difference is refused (422).

Questionnaire           Questionnaire (reference data, not patient data)
  code                  url = CANONICAL/Questionnaire/<code>, name = the code, identifier
                        SYS_QUESTIONNAIRE|<code>
  version               version (goes up at each change; responses keep theirs)
  status / title        status (draft | active | retired) / title in French (the default
                        language, `language` = fr) with the English and German texts as the
                        standard translation extension on `_title`
  purpose               useContext[workflow] = SYS_QUESTIONNAIRE_PURPOSE|follow-up or
                        satisfaction
  answer_within_days    ext:answer-within (valueDuration, days)
  items                 item[] (flat): linkId, text (French, translations on `_text`), type
                        (choice, integer, decimal, boolean, string, text), required,
                        answerOption[].valueCoding (code, display with its translations), and
                        the standard minValue / maxValue extensions for numbers

QuestionnaireResponse   QuestionnaireResponse
  questionnaire,        questionnaire = <url>|<version answered>
  questionnaire_version
  (always)              status = completed (a response is stored when sent)
  patient / authored_at subject / authored
  author                author: the patient (Patient/<id>) or a professional; source = the
                        patient
  answers               item[]: linkId, text, answer[0].valueCoding (choice: code and display),
                        valueInteger, valueDecimal, valueBoolean or valueString, in the
                        questionnaire's order
  flagged               ext:needs-attention (an answer met a question's alert condition)

A page of any of these costs a fixed number of queries when loaded with its `*_with_related`
queryset (the FHIR API's types use them); `*_to_fhir` look up what is missing themselves.
"""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import translation

from apps.accounts.models import Role
from apps.records.fhir import CANONICAL, SYS_ROLE, UCUM
from apps.records.fhir.helpers import _cc, _clean, _ext, _iso, _meta, _number, _user_ref
from apps.records.models import CareTeam, Concept

from .models import (
    Activity,
    CarePlan,
    Goal,
    Questionnaire,
    QuestionnaireResponse,
    Task,
    TaskNote,
)
from .models.common import ActivityKind, Origin, TaskKind

SYS_TASK_KIND = CANONICAL + "/CodeSystem/task-kind"
SYS_ACTIVITY_KIND = CANONICAL + "/CodeSystem/care-activity-kind"
SYS_TASK_OUTPUT = CANONICAL + "/CodeSystem/task-output"
SYS_ORIGIN = CANONICAL + "/CodeSystem/care-origin"
SYS_QUESTIONNAIRE = CANONICAL + "/sid/questionnaire"
SYS_QUESTIONNAIRE_PURPOSE = CANONICAL + "/CodeSystem/questionnaire-purpose"
QUESTIONNAIRE_URL = CANONICAL + "/Questionnaire/"
PATHWAY_URL = CANONICAL + "/PlanDefinition/"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
USAGE_CONTEXT = "http://terminology.hl7.org/CodeSystem/usage-context-type"
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"

# Our activity kinds as FHIR CarePlanActivityKind (the resource the activity would become).
ACTIVITY_FHIR_KIND: dict[str, str] = {
    ActivityKind.TASK: "Task",
    ActivityKind.APPOINTMENT: "Appointment",
    ActivityKind.MONITORING: "ServiceRequest",
    ActivityKind.MEDICATION: "MedicationRequest",
    ActivityKind.EDUCATION: "CommunicationRequest",
    ActivityKind.QUESTIONNAIRE: "Task",
}
GOAL_LIFECYCLE: dict[str, str] = {
    Goal.Status.PROPOSED: "proposed",
    Goal.Status.ACTIVE: "active",
    Goal.Status.ACHIEVED: "completed",
    Goal.Status.CANCELLED: "cancelled",
}
# Our question types are FHIR's item types.
ITEM_TYPES = {"choice", "integer", "decimal", "boolean", "string", "text"}


@functools.cache
def _english(choices: type[Any]) -> dict[str, str]:
    """The labels of a choices class in English: codes of a code system are not translated."""
    with translation.override(None):
        return {choice.value: str(choice.label) for choice in choices}


def _days(days: int | None) -> dict[str, Any] | None:
    if days is None:
        return None
    return {"value": days, "unit": "d", "system": UCUM, "code": "d"}


def _translations(obj: Any, field: str) -> dict[str, Any] | None:
    """`_<field>` carrying the English and German texts of a French default."""
    found = []
    for language in ("en", "de"):
        key = f"{field}_{language}"
        text = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, "")
        if text:
            found.append(
                {
                    "url": TRANSLATION,
                    "extension": [
                        {"url": "lang", "valueCode": language},
                        {"url": "content", "valueString": str(text)},
                    ],
                }
            )
    return {"extension": found} if found else None


# ---------------------------------------------------------------------------------------------
# CarePlan


def care_team() -> Subquery:
    """The fhir_id of the patient's care team (the active one, the oldest first)."""
    teams = CareTeam.objects.filter(patient_id=OuterRef("patient_id"))
    return Subquery(teams.order_by("-active", "pk").values("fhir_id")[:1])


def _goals_queryset() -> QuerySet[Goal]:
    concepts = Concept.objects.filter(code=OuterRef("measure")).order_by("system")
    return Goal.objects.annotate(
        measure_system=Subquery(concepts.values("system")[:1]),
        measure_display=Subquery(concepts.values("display")[:1]),
    ).order_by("order", "pk")


def _activities_queryset() -> QuerySet[Activity]:
    tasks = Task.objects.only("pk", "fhir_id", "activity_id").order_by("pk")
    return (
        Activity.objects.select_related("responsible__practitioner")
        .prefetch_related(Prefetch("tasks", queryset=tasks))
        .order_by("order", "due_date", "pk")
    )


def plans_with_related(queryset: QuerySet[CarePlan]) -> QuerySet[CarePlan]:
    """`queryset` loading everything `careplan_to_fhir` reads, in a fixed number of queries."""
    return (
        queryset.select_related(
            "patient", "pathway", "coordinator__practitioner", "created_by__practitioner"
        )
        .prefetch_related(
            Prefetch("goals", queryset=_goals_queryset()),
            Prefetch("activities", queryset=_activities_queryset()),
        )
        .annotate(fhir_care_team=care_team())
    )


def _plan_related(plan: CarePlan) -> tuple[list[Goal], list[Activity], Any]:
    """Goals, activities and care team of a plan, however it was loaded."""
    cache = getattr(plan, "_prefetched_objects_cache", {})
    goals = (
        list(plan.goals.all()) if "goals" in cache else list(_goals_queryset().filter(plan=plan))
    )
    if "activities" in cache:
        activities = list(plan.activities.all())
    else:
        activities = list(_activities_queryset().filter(plan=plan))
    if hasattr(plan, "fhir_care_team"):
        team = plan.fhir_care_team
    else:
        team = (
            CareTeam.objects.filter(patient_id=plan.patient_id)
            .order_by("-active", "pk")
            .values_list("fhir_id", flat=True)
            .first()
        )
    return goals, activities, team


def _goal(goal: Goal, patient_ref: dict[str, Any]) -> dict[str, Any]:
    measure = None
    if goal.measure:
        system = getattr(goal, "measure_system", None)
        measure = {
            "coding": [
                {
                    "system": system,
                    "code": goal.measure,
                    "display": getattr(goal, "measure_display", None),
                }
            ]
        }
    unit = goal.unit or None

    def quantity(value: Decimal | None) -> dict[str, Any] | None:
        return {"value": _number(value), "unit": unit} if value is not None else None

    target = {
        "measure": measure,
        "detailRange": {"low": quantity(goal.target_low), "high": quantity(goal.target_high)},
        "dueDate": _iso(goal.due_date),
    }
    achieved = goal.status == Goal.Status.ACHIEVED
    return {
        "resourceType": "Goal",
        "id": f"goal-{goal.pk}",
        "lifecycleStatus": GOAL_LIFECYCLE.get(goal.status, "active"),
        "achievementStatus": _cc(GOAL_ACHIEVEMENT, "achieved", "Achieved") if achieved else None,
        "description": {"text": goal.description},
        "subject": patient_ref,
        "target": [target],
    }


def _activity(activity: Activity) -> dict[str, Any]:
    kinds = _english(ActivityKind)
    if activity.repeat_days:
        schedule: dict[str, Any] = {
            "scheduledTiming": {
                "event": [_iso(activity.due_date)] if activity.due_date else None,
                "repeat": {"frequency": 1, "period": activity.repeat_days, "periodUnit": "d"},
            }
        }
    else:
        schedule = {"scheduledPeriod": {"end": _iso(activity.due_date)}}
    role = activity.responsible_role if activity.responsible is None else ""
    detail = {
        "extension": [
            _ext("responsible-role", "valueCodeableConcept", _role(role)),
            _ext("origin", "valueCoding", _origin(activity.origin)),
        ],
        "kind": ACTIVITY_FHIR_KIND.get(activity.kind),
        "code": {
            "coding": [
                {
                    "system": SYS_ACTIVITY_KIND,
                    "code": activity.kind,
                    "display": kinds.get(activity.kind),
                }
            ],
            "text": activity.title,
        },
        "status": activity.status,
        **schedule,
        "performer": [_user_ref(activity.responsible)],
        "description": activity.detail,
    }
    return {
        "outcomeReference": [
            {"reference": f"Task/{task.fhir_id}"} for task in activity.tasks.all()
        ],
        "detail": detail,
    }


def _role(role: str) -> dict[str, Any] | None:
    if not role:
        return None
    return _cc(SYS_ROLE, role, _english(Role).get(role))


def _origin(origin: str) -> dict[str, Any] | None:
    if not origin or origin == Origin.MANUAL:
        return None
    return {"system": SYS_ORIGIN, "code": origin, "display": _english(Origin).get(origin)}


def careplan_to_fhir(plan: CarePlan) -> dict[str, Any]:
    """A CarePlan; load lists with `plans_with_related` (a fixed number of queries)."""
    goals, activities, team = _plan_related(plan)
    patient_ref = {"reference": f"Patient/{plan.patient.fhir_id}"}
    pathway = plan.pathway
    canonical = None
    if pathway is not None:
        canonical = f"{PATHWAY_URL}{pathway.code}|{plan.pathway_version or pathway.version}"
    contained = [_goal(goal, patient_ref) for goal in goals]
    return _clean(
        {
            "resourceType": "CarePlan",
            "id": str(plan.fhir_id),
            "meta": _meta(plan),
            "extension": [
                _ext("follow-up-interval", "valueDuration", _days(plan.follow_up_days)),
                _ext("next-follow-up", "valueDate", _iso(plan.next_follow_up)),
            ],
            "contained": contained,
            "instantiatesCanonical": [canonical] if canonical else None,
            "status": plan.status,
            "intent": "plan",
            "title": plan.title,
            "description": plan.description,
            "subject": patient_ref,
            "period": {"start": _iso(plan.start_date), "end": _iso(plan.end_date)},
            "created": _iso(plan.created_at),
            "author": _user_ref(plan.coordinator or plan.created_by),
            "careTeam": [{"reference": f"CareTeam/{team}"}] if team else None,
            "goal": [{"reference": f"#{goal['id']}"} for goal in contained],
            "activity": [_activity(activity) for activity in activities],
        }
    )


# ---------------------------------------------------------------------------------------------
# Task


def _notes_queryset() -> QuerySet[TaskNote]:
    return TaskNote.objects.select_related("author__practitioner").order_by("created_at", "pk")


def tasks_with_related(queryset: QuerySet[Task]) -> QuerySet[Task]:
    """`queryset` loading everything `task_to_fhir` reads, in a fixed number of queries."""
    return queryset.select_related(
        "patient",
        "plan",
        "requester__practitioner",
        "assignee__practitioner",
    ).prefetch_related(Prefetch("notes", queryset=_notes_queryset()))


def _note(author: Any, at: Any, text: str) -> dict[str, Any] | None:
    if not text:
        return None
    return {"authorReference": _user_ref(author), "time": _iso(at), "text": text}


def task_to_fhir(task: Task) -> dict[str, Any]:
    """A Task; load lists with `tasks_with_related` (a fixed number of queries)."""
    cache = getattr(task, "_prefetched_objects_cache", {})
    notes = (
        list(task.notes.all()) if "notes" in cache else list(_notes_queryset().filter(task=task))
    )
    output = None
    if task.report:
        output = [
            {
                "type": _cc(SYS_TASK_OUTPUT, "report", "Report"),
                "valueString": task.report,
            }
        ]
    role = task.assignee_role if task.assignee is None else ""
    return _clean(
        {
            "resourceType": "Task",
            "id": str(task.fhir_id),
            "meta": _meta(task),
            "extension": [_ext("origin", "valueCoding", _origin(task.origin))],
            "basedOn": [{"reference": f"CarePlan/{task.plan.fhir_id}"}] if task.plan else None,
            "status": task.status,
            "statusReason": {"text": task.cancel_reason} if task.cancel_reason else None,
            "intent": "order",
            "priority": task.priority,
            "code": _cc(SYS_TASK_KIND, task.kind, _english(TaskKind).get(task.kind)),
            "description": task.title,
            "for": {"reference": f"Patient/{task.patient.fhir_id}"},
            "executionPeriod": {"start": _iso(task.started_at), "end": _iso(task.completed_at)},
            "authoredOn": _iso(task.created_at),
            "lastModified": _iso(task.updated_at),
            "requester": _user_ref(task.requester),
            "performerType": [_role(role)],
            "owner": _user_ref(task.assignee),
            "note": [
                _note(task.requester, task.created_at, task.instructions),
                *(_note(note.author, note.created_at, note.text) for note in notes),
            ],
            "restriction": {"period": {"end": _iso(task.due_at)}} if task.due_at else None,
            "output": output,
        }
    )


# ---------------------------------------------------------------------------------------------
# Questionnaire


def questionnaire_url(questionnaire: Questionnaire) -> str:
    return QUESTIONNAIRE_URL + questionnaire.code


def _number_ext(url: str, kind: str, value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if kind == "integer":
        return {"url": url, "valueInteger": int(number)}
    return {"url": url, "valueDecimal": _number(number)}


def _option(option: dict[str, Any]) -> dict[str, Any]:
    return {
        "valueCoding": {
            "code": str(option.get("code", "")),
            "display": option.get("display"),
            "_display": _translations(option, "display"),
        }
    }


def _item(question: dict[str, Any]) -> dict[str, Any]:
    kind = question.get("type")
    kind = kind if kind in ITEM_TYPES else "string"
    return {
        "extension": [
            _number_ext(MIN_VALUE, kind, question.get("min")),
            _number_ext(MAX_VALUE, kind, question.get("max")),
        ]
        if kind in ("integer", "decimal")
        else None,
        "linkId": str(question.get("link_id", "")),
        "text": question.get("text"),
        "_text": _translations(question, "text"),
        "type": kind,
        "required": bool(question.get("required", False)),
        "answerOption": [_option(o) for o in question.get("options") or []]
        if kind == "choice"
        else None,
    }


def questionnaire_to_fhir(questionnaire: Questionnaire) -> dict[str, Any]:
    purposes = _english(Questionnaire.Purpose)
    items = questionnaire.items if isinstance(questionnaire.items, list) else []
    return _clean(
        {
            "resourceType": "Questionnaire",
            "id": str(questionnaire.fhir_id),
            "meta": _meta(questionnaire),
            "language": "fr",
            "extension": [
                _ext("answer-within", "valueDuration", _days(questionnaire.answer_within_days))
            ],
            "url": questionnaire_url(questionnaire),
            "identifier": [{"system": SYS_QUESTIONNAIRE, "value": questionnaire.code}],
            "version": str(questionnaire.version),
            "name": questionnaire.code,
            "title": questionnaire.title,
            "_title": _translations(questionnaire, "title"),
            "status": questionnaire.status,
            "date": _iso(questionnaire.updated_at),
            "subjectType": ["Patient"],
            "useContext": [
                {
                    "code": {"system": USAGE_CONTEXT, "code": "workflow"},
                    "valueCodeableConcept": _cc(
                        SYS_QUESTIONNAIRE_PURPOSE,
                        questionnaire.purpose,
                        purposes.get(questionnaire.purpose),
                    ),
                }
            ],
            "item": [_item(q) for q in items if isinstance(q, dict)],
        }
    )


# ---------------------------------------------------------------------------------------------
# QuestionnaireResponse


def responses_with_related(
    queryset: QuerySet[QuestionnaireResponse],
) -> QuerySet[QuestionnaireResponse]:
    """`queryset` loading everything `response_to_fhir` reads, in a fixed number of queries."""
    return queryset.select_related("patient", "questionnaire", "author__practitioner")


def _answer(question: dict[str, Any], value: Any) -> dict[str, Any] | None:
    """The typed answer of `question` (its stored value's own type when the question is gone)."""
    kind = question.get("type")
    if value is None or value == "":
        return None
    if kind == "choice":
        display = next(
            (
                o.get("display")
                for o in question.get("options") or []
                if str(o.get("code")) == str(value)
            ),
            None,
        )
        return {"valueCoding": {"code": str(value), "display": display}}
    if kind == "boolean" or isinstance(value, bool):
        return {"valueBoolean": value in (True, "true", "1", 1)}
    if kind == "integer" or (kind is None and isinstance(value, int)):
        try:
            return {"valueInteger": int(value)}
        except (TypeError, ValueError):
            return {"valueString": str(value)}
    if kind == "decimal":
        try:
            return {"valueDecimal": _number(Decimal(str(value)))}
        except InvalidOperation:
            return {"valueString": str(value)}
    return {"valueString": str(value)}


def response_to_fhir(response: QuestionnaireResponse) -> dict[str, Any]:
    """A QuestionnaireResponse; load lists with `responses_with_related`."""
    questionnaire = response.questionnaire
    answers = response.answers if isinstance(response.answers, dict) else {}
    questions = [q for q in questionnaire.items or [] if isinstance(q, dict)]
    known = {str(q.get("link_id")) for q in questions}
    ordered = [(q, answers.get(str(q.get("link_id")))) for q in questions]
    # Answers to questions a later version removed: kept, typed by their own value.
    ordered += [({"link_id": k}, v) for k, v in answers.items() if k not in known]
    items = []
    for question, value in ordered:
        answer = _answer(question, value)
        if answer is not None:
            items.append(
                {
                    "linkId": str(question.get("link_id")),
                    "text": question.get("text"),
                    "answer": [answer],
                }
            )
    patient = response.patient
    patient_ref = {"reference": f"Patient/{patient.fhir_id}"}
    by_patient = patient.user_id is not None and response.author_id == patient.user_id
    return _clean(
        {
            "resourceType": "QuestionnaireResponse",
            "id": str(response.fhir_id),
            "meta": _meta(response),
            "extension": [_ext("needs-attention", "valueBoolean", response.flagged)],
            "questionnaire": f"{questionnaire_url(questionnaire)}|{response.questionnaire_version}",
            "status": "completed",
            "subject": patient_ref,
            "authored": _iso(response.authored_at),
            "author": patient_ref if by_patient else _user_ref(response.author),
            "source": patient_ref,
            "item": items,
        }
    )
