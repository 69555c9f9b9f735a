"""Serializers of the care coordination API (`/api/v1/care-plans/`, `tasks/`,
`questionnaire-requests/`, `doses/`, `proposals/`).

Output serializers read only what the views loaded (select_related / prefetch / annotations),
so a page costs a fixed number of queries. Input serializers check shapes; the services check
the rest and answer with a `CareError` the view turns into 400 `{"detail": message}`.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from apps.accounts.models import CLINICAL_ROLES, User

from .models import (
    Activity,
    CarePlan,
    DoseReminder,
    Goal,
    Proposal,
    QuestionnaireRequest,
    Task,
    TaskNote,
)
from .services.followup_items import item_text, option_text

CLINICAL_CHOICES = sorted(str(role) for role in CLINICAL_ROLES)


def _name(user: User | None) -> str:
    return (user.get_full_name() or user.email) if user is not None else ""


CareErrorSerializer = inline_serializer(
    name="CareError",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.CharField(), required=False, help_text="Per question (answers)."
        ),
    },
)


# ---------------------------------------------------------------------------------------------
# Care plans


class GoalSerializer(serializers.ModelSerializer[Goal]):
    class Meta:
        model = Goal
        fields = [
            "id",
            "description",
            "measure",
            "target_low",
            "target_high",
            "unit",
            "due_date",
            "status",
        ]
        read_only_fields = fields


class ActivitySerializer(serializers.ModelSerializer[Activity]):
    responsible_name = serializers.SerializerMethodField()

    class Meta:
        model = Activity
        fields = [
            "id",
            "title",
            "detail",
            "kind",
            "responsible",
            "responsible_name",
            "responsible_role",
            "due_date",
            "repeat_days",
            "status",
            "completed_at",
            "origin",
        ]
        read_only_fields = fields

    def get_responsible_name(self, activity: Activity) -> str:
        return _name(activity.responsible)


class CarePlanSerializer(serializers.ModelSerializer[CarePlan]):
    pathway = serializers.SerializerMethodField(help_text="The pathway's code, if any.")
    pathway_name = serializers.SerializerMethodField()
    coordinator_name = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField(help_text="Percentage of activities done.")
    web_url = serializers.SerializerMethodField(help_text="The plan's page in the portal.")

    class Meta:
        model = CarePlan
        fields = [
            "id",
            "fhir_id",
            "patient",
            "title",
            "status",
            "pathway",
            "pathway_name",
            "pathway_version",
            "start_date",
            "end_date",
            "coordinator",
            "coordinator_name",
            "follow_up_days",
            "next_follow_up",
            "progress",
            "created_at",
            "updated_at",
            "web_url",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_pathway(self, plan: CarePlan) -> str | None:
        return plan.pathway.code if plan.pathway is not None else None

    def get_pathway_name(self, plan: CarePlan) -> str:
        return plan.pathway.display_name() if plan.pathway is not None else ""

    def get_coordinator_name(self, plan: CarePlan) -> str:
        return _name(plan.coordinator)

    def get_progress(self, plan: CarePlan) -> int:
        counted = getattr(plan, "activities_counted", 0)
        done = getattr(plan, "activities_done", 0)
        return round(100 * done / counted) if counted else 0

    def get_web_url(self, plan: CarePlan) -> str:
        from .services.plans import plan_url

        return plan_url(plan)


class CarePlanDetailSerializer(CarePlanSerializer):
    goals = GoalSerializer(many=True, read_only=True)
    activities = ActivitySerializer(many=True, read_only=True)

    class Meta(CarePlanSerializer.Meta):
        fields = [*CarePlanSerializer.Meta.fields, "description", "goals", "activities"]
        read_only_fields = fields


class PlanQuerySerializer(serializers.Serializer[Any]):
    patient = serializers.IntegerField(required=False, help_text="One patient's plans.")
    status = serializers.ChoiceField(choices=CarePlan.Status.choices, required=False)


# ---------------------------------------------------------------------------------------------
# Tasks


class TaskNoteSerializer(serializers.ModelSerializer[TaskNote]):
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = TaskNote
        fields = ["id", "author", "author_name", "text", "created_at"]
        read_only_fields = fields

    def get_author_name(self, note: TaskNote) -> str:
        return _name(note.author)


class TaskSerializer(serializers.ModelSerializer[Task]):
    patient_name = serializers.SerializerMethodField()
    assignee_name = serializers.SerializerMethodField()
    requester_name = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField(help_text="Open and past its due time.")
    web_url = serializers.SerializerMethodField(help_text="The task's page in the portal.")

    class Meta:
        model = Task
        fields = [
            "id",
            "fhir_id",
            "patient",
            "patient_name",
            "plan",
            "activity",
            "kind",
            "title",
            "status",
            "priority",
            "assignee",
            "assignee_name",
            "assignee_role",
            "requester",
            "requester_name",
            "due_at",
            "overdue",
            "created_at",
            "started_at",
            "completed_at",
            "completed_by",
            "cancel_reason",
            "origin",
            "web_url",
        ]
        read_only_fields = fields

    def get_patient_name(self, task: Task) -> str:
        return f"{task.patient.given_names} {task.patient.family_name}".strip()

    def get_assignee_name(self, task: Task) -> str:
        return _name(task.assignee)

    def get_requester_name(self, task: Task) -> str:
        return _name(task.requester)

    def get_overdue(self, task: Task) -> bool:
        return task.is_overdue(self.context.get("now"))

    def get_web_url(self, task: Task) -> str:
        from .services.tasks import task_url

        return task_url(task)


class TaskDetailSerializer(TaskSerializer):
    notes = TaskNoteSerializer(many=True, read_only=True)

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "instructions", "report", "notes"]
        read_only_fields = fields


class TaskQuerySerializer(serializers.Serializer[Any]):
    mine = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only open tasks assigned to me or waiting for my profession.",
    )
    patient = serializers.IntegerField(required=False, help_text="One patient's tasks.")
    status = serializers.ChoiceField(
        choices=[("open", _("open")), *Task.Status.choices], required=False
    )
    priority = serializers.ChoiceField(choices=Task.Priority.choices, required=False)
    kind = serializers.ChoiceField(choices=Task.Kind.choices, required=False)
    overdue = serializers.BooleanField(required=False, default=False)


class TaskInSerializer(serializers.Serializer[Any]):
    patient = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Task.Kind.choices)
    title = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    assignee = serializers.IntegerField(required=False, allow_null=True, default=None)
    assignee_role = serializers.ChoiceField(
        choices=CLINICAL_CHOICES, required=False, allow_blank=True, default=""
    )
    priority = serializers.ChoiceField(choices=Task.Priority.choices, default="routine")
    due_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    plan = serializers.IntegerField(required=False, allow_null=True, default=None)
    activity = serializers.IntegerField(required=False, allow_null=True, default=None)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["assignee"] is None and not data["assignee_role"]:
            raise serializers.ValidationError(
                {"assignee": [_("Choose a colleague or a profession.")]}
            )
        return data


class TaskAssignSerializer(serializers.Serializer[Any]):
    assignee = serializers.IntegerField(
        allow_null=True, help_text="A clinician of the care team; null: anyone of the profession."
    )
    assignee_role = serializers.ChoiceField(
        choices=CLINICAL_CHOICES, required=False, allow_blank=True, default=""
    )


class CompleteSerializer(serializers.Serializer[Any]):
    report = serializers.CharField(required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(allow_blank=True)


class NoteInSerializer(serializers.Serializer[Any]):
    text = serializers.CharField()


# ---------------------------------------------------------------------------------------------
# Follow-up: questionnaires to answer, doses


class QuestionnaireRequestSerializer(serializers.ModelSerializer[QuestionnaireRequest]):
    code = serializers.SerializerMethodField(help_text="The questionnaire's code.")
    title = serializers.SerializerMethodField()
    questions = serializers.SerializerMethodField(
        help_text=(
            "Each question in the reader's language: link_id, text, type (choice, integer, "
            "decimal, boolean, string, text), required, options [{code, display}], min, max."
        )
    )
    answerable = serializers.SerializerMethodField()

    class Meta:
        model = QuestionnaireRequest
        fields = [
            "id",
            "code",
            "title",
            "status",
            "due_at",
            "expires_at",
            "answerable",
            "questions",
        ]
        read_only_fields = fields

    def get_code(self, obj: QuestionnaireRequest) -> str:
        return obj.questionnaire.code

    def get_title(self, obj: QuestionnaireRequest) -> str:
        return obj.questionnaire.display_title()

    def get_answerable(self, obj: QuestionnaireRequest) -> bool:
        now = self.context.get("now") or timezone.now()
        return obj.status == QuestionnaireRequest.Status.SENT and obj.expires_at > now

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_questions(self, obj: QuestionnaireRequest) -> list[dict[str, Any]]:
        found = []
        for item in obj.questionnaire.items or []:
            if not isinstance(item, dict):
                continue
            question: dict[str, Any] = {
                "link_id": item.get("link_id"),
                "text": item_text(item),
                "type": item.get("type"),
                "required": bool(item.get("required", False)),
            }
            if item.get("options"):
                question["options"] = [
                    {"code": o.get("code"), "display": option_text(o)} for o in item["options"]
                ]
            for bound in ("min", "max"):
                if item.get(bound) is not None:
                    question[bound] = item[bound]
            found.append(question)
        return found


class AnswersSerializer(serializers.Serializer[Any]):
    answers = serializers.DictField(
        help_text="{link_id: value}: a number, true/false, an option's code or text."
    )


class DoseSerializer(serializers.ModelSerializer[DoseReminder]):
    medication = serializers.SerializerMethodField()
    dose = serializers.SerializerMethodField(help_text="How much to take.")
    answerable = serializers.SerializerMethodField()

    class Meta:
        model = DoseReminder
        fields = [
            "id",
            "medication",
            "dose",
            "scheduled_for",
            "local_time",
            "status",
            "answered_at",
            "skip_reason",
            "answerable",
        ]
        read_only_fields = fields

    def get_medication(self, obj: DoseReminder) -> str:
        return obj.line.medication.name

    def get_dose(self, obj: DoseReminder) -> str:
        return str(obj.line.dose)

    def get_answerable(self, obj: DoseReminder) -> bool:
        from .services.reminders import is_answerable

        return is_answerable(obj, self.context.get("now"))


class DoseQuerySerializer(serializers.Serializer[Any]):
    when = serializers.ChoiceField(
        choices=[("upcoming", _("upcoming")), ("recent", _("recent"))],
        default="upcoming",
        help_text="upcoming: still to take or answer, soonest first; recent: answered or "
        "missed in the last 30 days, newest first.",
    )


class DoseAnswerSerializer(serializers.Serializer[Any]):
    answer = serializers.ChoiceField(choices=[("taken", _("taken")), ("skipped", _("skipped"))])
    reason = serializers.CharField(required=False, allow_blank=True, default="")


# ---------------------------------------------------------------------------------------------
# Decision support


class ProposalSerializer(serializers.ModelSerializer[Proposal]):
    title = serializers.SerializerMethodField()
    reason = serializers.SerializerMethodField(help_text="Why, in the reader's language.")
    severity = serializers.SerializerMethodField()
    action = serializers.SerializerMethodField(help_text="task or prescription on acceptance.")
    rule_version = serializers.SerializerMethodField()
    decided_by_name = serializers.SerializerMethodField()

    class Meta:
        model = Proposal
        fields = [
            "id",
            "patient",
            "rule_code",
            "rule_version",
            "title",
            "reason",
            "severity",
            "action",
            "status",
            "evidence",
            "created_at",
            "decided_by",
            "decided_by_name",
            "decided_at",
            "dismiss_reason",
            "task",
            "prescription",
        ]
        read_only_fields = fields

    def get_title(self, proposal: Proposal) -> str:
        return proposal.rule.display_title()

    def get_reason(self, proposal: Proposal) -> str:
        from .services.support.proposals import render_reason

        return render_reason(proposal)

    def get_severity(self, proposal: Proposal) -> str:
        return proposal.rule.severity

    def get_action(self, proposal: Proposal) -> str:
        return proposal.rule.action

    def get_rule_version(self, proposal: Proposal) -> int:
        return proposal.rule.version

    def get_decided_by_name(self, proposal: Proposal) -> str:
        return _name(proposal.decided_by)


class ProposalQuerySerializer(serializers.Serializer[Any]):
    patient = serializers.IntegerField(help_text="The patient whose proposals to list.")
    status = serializers.ChoiceField(choices=Proposal.Status.choices, required=False)


class AcceptSerializer(serializers.Serializer[Any]):
    assignee = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Who gets the task (a clinician of the care team); default: yourself.",
    )
