"""Follow-up questionnaires and satisfaction surveys: the reference questionnaires, the beat job
that schedules, sends and expires requests, and the patient's answers (a worrying answer makes
an urgent task for the care team).

`run_questionnaires` (every five minutes) is idempotent: each request has a natural key
(`plan:<plan>:<code>:day<N>`, `encounter:<encounter>:<code>`), rows are inserted with
`ignore_conflicts`, and sending or expiring is a conditional change of status, so two workers
never send one twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.notifications.services import notify
from apps.records.access import check_patient_access
from apps.records.models import CareTeamMember, Encounter
from apps.records.reference import ReferenceDataError

from ..models import (
    CarePlan,
    CarePreferences,
    PathwayQuestionnaire,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
    Task,
)
from . import CareError
from .followup_db import insert_new
from .followup_items import (
    AnswerErrors,
    ItemsError,
    alerting_items,
    answer_display,
    check_answers,
    check_items,
    item_text,
)
from .followup_time import LocalRules, local_moment, out_of_quiet_hours, rules_for

logger = logging.getLogger(__name__)

__all__ = [
    "AnswerErrors",
    "ItemsError",
    "check_items",
    "do_answer_questionnaire",
    "load_reference_questionnaires",
    "run_questionnaires",
]

FILENAME = "questionnaires.json"
QUESTIONNAIRE_KEYS = {
    "code",
    "title",
    "title_en",
    "title_de",
    "purpose",
    "status",
    "answer_within_days",
    "items",
}
# Plan questionnaires are due at this local time of their day; surveys this long after the end.
PLAN_DUE_TIME = dt.time(10, 0)
SURVEY_DELAY = dt.timedelta(hours=2)
# Consultations that ended this long ago or less get a satisfaction survey.
SURVEY_LOOKBACK = dt.timedelta(days=3)
BATCH = 500


def request_url(request_obj: QuestionnaireRequest) -> str:
    return reverse("care:questionnaire", args=[request_obj.pk])


# ---------------------------------------------------------------------------------------------
# Reference questionnaires


def default_directory() -> Path:
    return Path(settings.BASE_DIR) / "fixtures" / "care"


def _check_entry(raw: Any, where: str) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where}: must be an object"]
    problems = []
    unknown = sorted(set(raw) - QUESTIONNAIRE_KEYS)
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    code = raw.get("code")
    field = Questionnaire._meta.get_field("code")
    if not isinstance(code, str) or not code:
        problems.append(f"{where}: code is required")
    else:
        try:
            field.clean(code, None)
        except Exception:  # noqa: BLE001 - any validation failure is reported the same way
            problems.append(f"{where}: code must be a slug of at most 40 characters")
        where = f"{where} ({code})"
    for key, required in (("title", True), ("title_en", False), ("title_de", False)):
        value = raw.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()) or len(value) > 200:
            problems.append(f"{where}: {key} must be a text of at most 200 characters")
    if raw.get("purpose") not in Questionnaire.Purpose.values:
        problems.append(
            f"{where}: purpose must be one of {', '.join(Questionnaire.Purpose.values)}"
        )
    if raw.get("status", Questionnaire.Status.ACTIVE) not in Questionnaire.Status.values:
        problems.append(f"{where}: status must be one of {', '.join(Questionnaire.Status.values)}")
    days = raw.get("answer_within_days", 3)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 60:
        problems.append(f"{where}: answer_within_days must be a whole number from 1 to 60")
    try:
        check_items(raw.get("items"))
    except ItemsError as exc:
        problems += [f"{where} {problem}" for problem in exc.problems]
    if problems:
        return None, problems
    entry = {
        "code": code,
        "title": raw["title"].strip(),
        "title_en": raw.get("title_en", "").strip(),
        "title_de": raw.get("title_de", "").strip(),
        "purpose": raw["purpose"],
        "status": raw.get("status", Questionnaire.Status.ACTIVE),
        "answer_within_days": days,
        "items": raw["items"],
    }
    return entry, []


def check_reference_questionnaires(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """The questionnaires of `questionnaires.json`, checked; ReferenceDataError otherwise."""
    path = Path(directory or default_directory()) / FILENAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceDataError([f"{FILENAME}: file not found in {path.parent}"]) from None
    except UnicodeDecodeError:
        raise ReferenceDataError([f"{FILENAME}: not UTF-8 text"]) from None
    except json.JSONDecodeError as exc:
        raise ReferenceDataError(
            [f"{FILENAME}: invalid JSON at line {exc.lineno}: {exc.msg}"]
        ) from None
    if not isinstance(data, list):
        raise ReferenceDataError([f"{FILENAME}: must hold a JSON list of questionnaires"])
    entries, problems, seen = [], [], set()
    for index, raw in enumerate(data):
        entry, entry_problems = _check_entry(raw, f"{FILENAME} entry {index}")
        problems += entry_problems
        if entry is None:
            continue
        if entry["code"] in seen:
            problems.append(f"{FILENAME} entry {index}: code {entry['code']!r} is used twice")
        seen.add(entry["code"])
        entries.append(entry)
    if problems:
        raise ReferenceDataError(problems)
    return entries


def load_reference_questionnaires(directory: str | Path | None = None) -> dict[str, int]:
    """Upsert the reference questionnaires by code (idempotent; a change bumps the version).

    Raises ReferenceDataError, writing nothing, when the file is invalid.
    """
    entries = check_reference_questionnaires(directory)
    existing = {
        q.code: q for q in Questionnaire.objects.filter(code__in=[e["code"] for e in entries])
    }
    created = updated = unchanged = 0
    with transaction.atomic():
        for entry in entries:
            row = existing.get(entry["code"])
            if row is None:
                Questionnaire.objects.create(**entry)
                created += 1
                continue
            changed = [name for name, value in entry.items() if getattr(row, name) != value]
            if not changed:
                unchanged += 1
                continue
            for name in changed:
                setattr(row, name, entry[name])
            row.save(update_fields=changed)  # FhirResource.save bumps the version
            updated += 1
    return {
        "questionnaires": len(entries),
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
    }


# ---------------------------------------------------------------------------------------------
# Scheduling


def _rules(patient_ids: set[int]) -> dict[int, LocalRules]:
    prefs = {p.patient_id: p for p in CarePreferences.objects.filter(patient_id__in=patient_ids)}
    return {pk: rules_for(prefs.get(pk)) for pk in patient_ids}


def _new_request(
    *,
    key: str,
    patient_id: int,
    questionnaire: Questionnaire,
    due_at: dt.datetime,
    plan: CarePlan | None = None,
    encounter: Encounter | None = None,
) -> QuestionnaireRequest:
    return QuestionnaireRequest(
        key=key,
        patient_id=patient_id,
        questionnaire=questionnaire,
        plan=plan,
        encounter=encounter,
        due_at=due_at,
        expires_at=due_at + dt.timedelta(days=questionnaire.answer_within_days),
    )


def plan_requests(now: dt.datetime) -> list[QuestionnaireRequest]:
    """The requests the active plans' pathways call for, still answerable (unsaved)."""
    lines = list(
        PathwayQuestionnaire.objects.filter(
            questionnaire__status=Questionnaire.Status.ACTIVE,
            pathway__plans__status=CarePlan.Status.ACTIVE,
            pathway__plans__patient__user__isnull=False,
        )
        .select_related("questionnaire")
        .distinct()
    )
    by_pathway: dict[int, list[PathwayQuestionnaire]] = {}
    for line in lines:
        by_pathway.setdefault(line.pathway_id, []).append(line)
    plans = list(
        CarePlan.objects.filter(
            status=CarePlan.Status.ACTIVE,
            pathway_id__in=by_pathway,
            patient__user__isnull=False,
        ).order_by("pk")
    )
    rules = _rules({plan.patient_id for plan in plans})
    wanted = []
    for plan in plans:
        rule = rules[plan.patient_id]
        for line in by_pathway.get(plan.pathway_id or 0, []):
            for day in sorted(set(line.days)):
                local_day = plan.start_date + dt.timedelta(days=day)
                due = out_of_quiet_hours(local_moment(local_day, PLAN_DUE_TIME, rule.zone), rule)
                request_obj = _new_request(
                    key=f"plan:{plan.pk}:{line.questionnaire.code}:day{day}",
                    patient_id=plan.patient_id,
                    questionnaire=line.questionnaire,
                    due_at=due,
                    plan=plan,
                )
                # Days long gone (a plan started in the past) are not asked any more.
                if request_obj.expires_at > now:
                    wanted.append(request_obj)
    return wanted


def survey_for(patient_id: int) -> Questionnaire | None:
    """The satisfaction survey after a consultation: the open plan's pathway's, else the
    setting's (None when neither names an active one)."""
    plan = (
        CarePlan.objects.filter(
            patient_id=patient_id,
            status__in=("active", "on-hold", "draft"),
            pathway__satisfaction_survey__isnull=False,
            pathway__satisfaction_survey__status=Questionnaire.Status.ACTIVE,
        )
        .select_related("pathway__satisfaction_survey")
        .order_by("pk")
        .first()
    )
    if plan is not None and plan.pathway is not None:
        return plan.pathway.satisfaction_survey
    code = settings.CARE_SATISFACTION_SURVEY
    if not code:
        return None
    return Questionnaire.objects.filter(code=code, status=Questionnaire.Status.ACTIVE).first()


def survey_requests(now: dt.datetime) -> list[QuestionnaireRequest]:
    """A satisfaction survey for each consultation that ended in the last three days (unsaved)."""
    encounters = list(
        Encounter.objects.filter(
            status=Encounter.Status.FINISHED,
            ended_at__gte=now - SURVEY_LOOKBACK,
            ended_at__lte=now,
            patient__user__isnull=False,
        )
        .exclude(
            pk__in=QuestionnaireRequest.objects.filter(encounter__isnull=False).values(
                "encounter_id"
            )
        )
        .order_by("pk")
    )
    rules = _rules({e.patient_id for e in encounters})
    surveys: dict[int, Questionnaire | None] = {}
    wanted = []
    for encounter in encounters:
        if encounter.patient_id not in surveys:
            surveys[encounter.patient_id] = survey_for(encounter.patient_id)
        survey = surveys[encounter.patient_id]
        if survey is None or encounter.ended_at is None:
            continue
        due = out_of_quiet_hours(encounter.ended_at + SURVEY_DELAY, rules[encounter.patient_id])
        wanted.append(
            _new_request(
                key=f"encounter:{encounter.pk}:{survey.code}",
                patient_id=encounter.patient_id,
                questionnaire=survey,
                due_at=due,
                encounter=encounter,
            )
        )
    return wanted


def _insert(requests: list[QuestionnaireRequest]) -> int:
    return insert_new(QuestionnaireRequest, requests, ("key",))


def schedule_requests(now: dt.datetime | None = None) -> int:
    """Create the plan questionnaires and satisfaction surveys now called for; how many new."""
    now = now or timezone.now()
    # A plan closed or paused since: its questionnaires not yet sent are not sent.
    QuestionnaireRequest.objects.filter(
        status=QuestionnaireRequest.Status.SCHEDULED, plan__isnull=False
    ).exclude(plan__status=CarePlan.Status.ACTIVE).update(
        status=QuestionnaireRequest.Status.CANCELLED
    )
    return _insert(plan_requests(now)) + _insert(survey_requests(now))


def _announce(request_obj: QuestionnaireRequest, user: User, rules: LocalRules) -> None:
    """The patient's notification: no title of the questionnaire (it may say why they are
    followed), just a link and the deadline (in the patient's time zone)."""
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        until = request_obj.expires_at.astimezone(rules.zone).strftime("%d.%m.%Y")
        if request_obj.encounter_id is not None:
            title = _("How was your consultation? Tell us in a few questions")
        else:
            title = _("Your care team sent you a questionnaire")
        body = _("Please answer it by %(date)s.") % {"date": until}
    notify(
        user,
        "care.questionnaire",
        title,
        body,
        request_url(request_obj),
        ref=f"care.questionnaire:{request_obj.pk}",
    )


def send_due_requests(now: dt.datetime | None = None) -> int:
    """Send the requests due now; each exactly once, whatever runs at the same time."""
    now = now or timezone.now()
    sent = 0
    while True:
        with transaction.atomic():
            claimed = list(
                QuestionnaireRequest.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(
                    status=QuestionnaireRequest.Status.SCHEDULED,
                    due_at__lte=now,
                    expires_at__gt=now,
                )
                .select_related("patient__user")
                .order_by("due_at", "pk")[:BATCH]
            )
            if not claimed:
                break
            QuestionnaireRequest.objects.filter(
                pk__in=[r.pk for r in claimed], status=QuestionnaireRequest.Status.SCHEDULED
            ).update(status=QuestionnaireRequest.Status.SENT, sent_at=now)
            rules = _rules({r.patient_id for r in claimed})
            for request_obj in claimed:
                user = request_obj.patient.user
                if user is not None and user.is_active:
                    _announce(request_obj, user, rules[request_obj.patient_id])
            sent += len(claimed)
    return sent


def expire_requests(now: dt.datetime | None = None) -> int:
    """Requests not answered in time are closed as "not answered"."""
    now = now or timezone.now()
    return QuestionnaireRequest.objects.filter(
        status__in=(QuestionnaireRequest.Status.SCHEDULED, QuestionnaireRequest.Status.SENT),
        expires_at__lte=now,
    ).update(status=QuestionnaireRequest.Status.EXPIRED)


def run_questionnaires(now: dt.datetime | None = None) -> int:
    """The beat job: schedule, send what is due, expire; how many requests changed."""
    now = now or timezone.now()
    return schedule_requests(now) + send_due_requests(now) + expire_requests(now)


# ---------------------------------------------------------------------------------------------
# Answers


def is_answerable(request_obj: QuestionnaireRequest, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return request_obj.status == QuestionnaireRequest.Status.SENT and request_obj.expires_at > now


def review_requester(request_obj: QuestionnaireRequest) -> User | None:
    """Who asks the team to look at worrying answers: the plan's coordinator when they are on
    the care team, else the team's lead physician."""
    patient = request_obj.patient
    plan = request_obj.plan
    if plan is not None and plan.coordinator is not None:
        coordinator = plan.coordinator
        if coordinator.role in CLINICAL_ROLES and check_patient_access(coordinator, patient.pk):
            return coordinator
    members = (
        CareTeamMember.objects.filter(
            care_team__patient=patient,
            care_team__active=True,
            ended_at__isnull=True,
            user__is_active=True,
            user__role__in=CLINICAL_ROLES,
        )
        .select_related("user")
        .order_by("-is_lead", "started_at", "pk")
    )
    for member in members:
        if member.is_lead or member.user.role == Role.PHYSICIAN:
            return member.user
    first = members.first()
    return first.user if first is not None else None


# How soon the team should look at answers that meet an alert.
REVIEW_WITHIN = dt.timedelta(hours=4)


def _review_task(
    request_obj: QuestionnaireRequest, response: QuestionnaireResponse, alerts: list[dict[str, Any]]
) -> Task | None:
    from .tasks import do_create_task

    requester = review_requester(request_obj)
    if requester is None:
        logger.warning("No clinician to review flagged response %s", response.pk)
        return None
    access = check_patient_access(requester, request_obj.patient_id)
    if access is None:
        return None
    has_nurse = CareTeamMember.objects.filter(
        care_team__patient_id=request_obj.patient_id,
        care_team__active=True,
        ended_at__isnull=True,
        user__role=Role.NURSE,
        user__is_active=True,
    ).exists()
    questionnaire = request_obj.questionnaire
    # Staff-only texts (the task, not a notification): the questions and answers are useful.
    with translation.override(requester.preferred_language or settings.LANGUAGE_CODE):
        title = _("Review the answers to “%(title)s”") % {"title": questionnaire.display_title()}
        lines = [
            f"- {item_text(item)}: {answer_display(item, response.answers.get(item['link_id']))}"
            for item in alerts
        ]
        link = reverse("care:followup_response", args=[response.pk])
        instructions = "\n".join(
            [
                _("The patient's answers meet an alert:"),
                *lines,
                _("Answers: %(url)s") % {"url": link},
            ]
        )
    return do_create_task(
        access,
        kind=Task.Kind.REVIEW_RESULTS,
        title=title[:200],
        instructions=instructions,
        assignee=None if has_nurse else requester,
        assignee_role=Role.NURSE if has_nurse else "",
        priority=Task.Priority.URGENT,
        # Looked at within the working day; the overdue check reminds otherwise.
        due_at=timezone.now() + REVIEW_WITHIN,
        plan=request_obj.plan if request_obj.plan_id else None,
    )


def do_answer_questionnaire(
    user: User,
    request_obj: QuestionnaireRequest,
    data: Any,
    *,
    request: HttpRequest | None = None,
    now: dt.datetime | None = None,
) -> QuestionnaireResponse:
    """The patient answers a questionnaire sent to them; once, checked, audited. A flagged
    response creates an urgent review task for the care team."""
    now = now or timezone.now()
    patient = request_obj.patient
    if not user.is_authenticated or patient.user_id != user.pk:
        raise CareError(_("Only the patient answers their questionnaires."))
    if request_obj.status == QuestionnaireRequest.Status.ANSWERED:
        raise CareError(_("You already answered this questionnaire."))
    if not is_answerable(request_obj, now):
        raise CareError(_("This questionnaire can no longer be answered."))
    questionnaire = request_obj.questionnaire
    items = questionnaire.items
    answers = check_answers(items, data)
    alerts = alerting_items(items, answers)
    with transaction.atomic():
        changed = QuestionnaireRequest.objects.filter(
            pk=request_obj.pk, status=QuestionnaireRequest.Status.SENT, expires_at__gt=now
        ).update(status=QuestionnaireRequest.Status.ANSWERED)
        if not changed:
            raise CareError(_("You already answered this questionnaire."))
        request_obj.status = QuestionnaireRequest.Status.ANSWERED
        response = QuestionnaireResponse.objects.create(
            patient=patient,
            questionnaire=questionnaire,
            questionnaire_version=questionnaire.version,
            request=request_obj,
            answers=answers,
            authored_at=now,
            author=user,
            flagged=bool(alerts),
        )
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=response,
            patient_id=str(patient.pk),
            detail={
                "what": "questionnaire response",
                "via": "self",
                "questionnaire": questionnaire.code,
                "flagged": bool(alerts),
            },
        )
        if alerts:
            _review_task(request_obj, response, alerts)
    return response


def _score(value: Any) -> int | None:
    """A scale answer as a number: integer answers, or choice codes "1"…"10"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def satisfaction_summary(responses: list[QuestionnaireResponse]) -> dict[str, Any]:
    """Average satisfaction (1–5) and the Net Promoter Score (0–10 "would recommend") of
    satisfaction responses, from the items coded `overall` and `recommend`."""
    overall = [s for r in responses if (s := _score(r.answers.get("overall"))) is not None]
    scores = [s for r in responses if (s := _score(r.answers.get("recommend"))) is not None]
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return {
        "count": len(responses),
        "overall": round(sum(overall) / len(overall), 1) if overall else None,
        "nps": round(100 * (promoters - detractors) / len(scores)) if scores else None,
    }
