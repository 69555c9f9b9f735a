"""Small pieces the care models share."""

from __future__ import annotations

from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


class Origin(models.TextChoices):
    """Where a plan activity or a task came from."""

    MANUAL = "manual", _("written by hand")
    TEMPLATE = "template", _("pathway template")
    MEETING = "meeting", _("multidisciplinary meeting")
    DECISION_SUPPORT = "decision-support", _("decision support")


def localized(obj: object, field: str, language: str | None = None) -> str:
    """`obj.<field>` in the active language: `<field>_en`/`<field>_de`, else the French one."""
    language = (language or get_language() or "fr")[:2]
    value = getattr(obj, f"{field}_{language}", "") if language in ("en", "de") else ""
    return value or getattr(obj, field)


class ActivityKind(models.TextChoices):
    """What a care-plan activity is (FHIR CarePlan.activity.detail.kind, roughly)."""

    TASK = "task", _("task for a professional")
    APPOINTMENT = "appointment", _("consultation")
    MONITORING = "monitoring", _("remote monitoring")
    MEDICATION = "medication", _("medication")
    EDUCATION = "education", _("education")
    QUESTIONNAIRE = "questionnaire", _("questionnaire")


class TaskKind(models.TextChoices):
    CALL = "call", _("call the patient")
    WOUND_CARE = "wound-care", _("wound care / dressing")
    REVIEW_RESULTS = "review-results", _("review results")
    MEDICATION_REVIEW = "medication-review", _("medication review")
    EXAM = "exam", _("order an exam")
    VISIT = "visit", _("visit or consultation")
    EDUCATION = "education", _("patient education")
    HANDOVER = "handover", _("handover")
    OTHER = "other", _("other")
