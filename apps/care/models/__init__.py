"""Care coordination: pathways (templates), care plans, case-management tasks,
multidisciplinary meetings, follow-up questionnaires and medication reminders, and decision
support. Every row that concerns a patient carries `patient` and is read through
`apps.records.access` like the rest of the record.
"""

from .common import ActivityKind, Origin, TaskKind
from .followup import (
    CarePreferences,
    DoseReminder,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
)
from .meetings import Meeting, MeetingCase, MeetingDecision, MeetingParticipant
from .pathways import (
    Pathway,
    PathwayActivity,
    PathwayGoal,
    PathwayQuestionnaire,
    PathwayThreshold,
)
from .plans import Activity, CarePlan, Goal
from .support import Proposal, Rule
from .tasks import Task, TaskNote

__all__ = [
    "Activity",
    "ActivityKind",
    "Origin",
    "TaskKind",
    "CarePlan",
    "CarePreferences",
    "DoseReminder",
    "Goal",
    "Meeting",
    "MeetingCase",
    "MeetingDecision",
    "MeetingParticipant",
    "Pathway",
    "PathwayActivity",
    "PathwayGoal",
    "PathwayQuestionnaire",
    "PathwayThreshold",
    "Proposal",
    "Questionnaire",
    "QuestionnaireRequest",
    "QuestionnaireResponse",
    "Rule",
    "Task",
    "TaskNote",
]
