"""Care interop cast: FHIR tokens, a pathway plan with goals and activities, a task with notes
and a report, a follow-up questionnaire and a response (flagged)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.accounts.services import do_issue_token
from apps.audit.models import AuditEvent
from apps.care.models import (
    Activity,
    CarePlan,
    Goal,
    Pathway,
    Questionnaire,
    QuestionnaireResponse,
    Task,
    TaskNote,
)
from apps.care.models.common import Origin
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.records.models import Concept, Patient, Practitioner
from apps.records.services.care_team import default_team, do_add_member

Fhir = Callable[..., Client]

ITEMS: list[dict[str, Any]] = [
    {
        "link_id": "pain",
        "text": "Douleur (0 à 10)",
        "text_en": "Pain (0 to 10)",
        "text_de": "Schmerz (0 bis 10)",
        "type": "integer",
        "required": True,
        "min": 0,
        "max": 10,
        "alert": {"op": ">=", "value": 7},
    },
    {
        "link_id": "wound",
        "text": "Aspect de la plaie",
        "text_en": "Wound",
        "type": "choice",
        "required": True,
        "options": [
            {"code": "ok", "display": "Propre", "display_en": "Clean", "display_de": "Sauber"},
            {"code": "red", "display": "Rouge", "display_en": "Red"},
        ],
    },
    {"link_id": "temp", "text": "Température", "type": "decimal", "min": 34, "max": 42},
    {"link_id": "fever", "text": "Avez-vous eu de la fièvre ?", "type": "boolean"},
    {"link_id": "comment", "text": "Remarques", "type": "text"},
]


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def fhir_client() -> Fhir:
    """A test client sending a bearer token of `user` with `scopes`."""

    def make(user: User, *scopes: str) -> Client:
        secret, _token = do_issue_token(user, name="care fhir test", scopes=list(scopes))
        return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT="application/fhir+json")

    return make


def system_client(scopes: str = "system/*.rs") -> Client:
    """A backend system's client with an OAuth2 token of `scopes`."""
    from oauth2_provider.models import AccessToken

    client, _secret = do_create_fhir_client("Care reader", scopes)
    token = secrets.token_urlsafe(16)
    AccessToken.objects.create(
        application=client.application, token=token, scope=scopes, expires="2999-01-01T00:00Z"
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")


def last_audit() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


@pytest.fixture
def practitioner(clinician: User) -> Practitioner:
    return Practitioner.objects.create(user=clinician, registration_number="7601000123456")


@pytest.fixture
def pathway(db: None) -> Pathway:
    return Pathway.objects.create(
        code="heart-failure", name="Insuffisance cardiaque", name_en="Heart failure", version=3
    )


@pytest.fixture
def systolic(db: None) -> Concept:
    return Concept.objects.get_or_create(
        system="http://loinc.org",
        code="8480-6",
        defaults={"display": "Systolic blood pressure", "unit": "mm[Hg]"},
    )[0]


@pytest.fixture
def plan(
    record: Patient,
    coordinator: User,
    nurse: User,
    pathway: Pathway,
    systolic: Concept,
    make_plan: Callable[..., CarePlan],
) -> CarePlan:
    """An active heart-failure plan: two goals, three activities (one repeating)."""
    plan = make_plan(
        title="Insuffisance cardiaque — suivi",
        description="Stabiliser le poids et la tension.",
        pathway=pathway,
        pathway_version=2,
        start_date=dt.date(2026, 3, 2),
        follow_up_days=30,
        next_follow_up=dt.date(2026, 4, 1),
    )
    Goal.objects.create(
        plan=plan,
        description="Tension systolique sous 140",
        measure="8480-6",
        target_low=Decimal("100"),
        target_high=Decimal("140"),
        unit="mm[Hg]",
        due_date=dt.date(2026, 6, 1),
        order=0,
    )
    Goal.objects.create(
        plan=plan, description="Marcher 30 minutes par jour", status=Goal.Status.ACHIEVED, order=1
    )
    Activity.objects.create(
        plan=plan,
        title="Pesée quotidienne",
        kind=Activity.Kind.MONITORING,
        responsible_role=Role.NURSE,
        repeat_days=7,
        due_date=dt.date(2026, 3, 9),
        origin=Origin.TEMPLATE,
        order=0,
    )
    Activity.objects.create(
        plan=plan,
        title="Consultation de cardiologie",
        kind=Activity.Kind.APPOINTMENT,
        responsible=coordinator,
        due_date=dt.date(2026, 4, 1),
        status=Activity.Status.SCHEDULED,
        order=1,
    )
    Activity.objects.create(
        plan=plan,
        title="Éducation thérapeutique",
        detail="Régime pauvre en sel",
        kind=Activity.Kind.EDUCATION,
        status=Activity.Status.COMPLETED,
        completed_at=timezone.now(),
        order=2,
    )
    return plan


@pytest.fixture
def task(
    plan: CarePlan, make_task: Callable[..., Task], clinician: User, nurse: User, practitioner: Any
) -> Task:
    """A completed wound-care task of the plan's first activity, with a note and a report."""
    activity = plan.activities.get(order=0)
    task = make_task(
        kind=Task.Kind.WOUND_CARE,
        title="Refaire le pansement",
        instructions="Pansement sec, contrôler la rougeur.",
        priority=Task.Priority.URGENT,
        due_at=timezone.now() + dt.timedelta(days=1),
        plan=plan,
        activity=activity,
    )
    TaskNote.objects.create(task=task, author=nurse, text="Patiente absente ce matin, repasse.")
    now = timezone.now()
    Task.objects.filter(pk=task.pk).update(
        status=Task.Status.COMPLETED,
        started_at=now - dt.timedelta(hours=1),
        completed_at=now,
        completed_by=nurse,
        report="Plaie propre, pansement refait.",
    )
    task.refresh_from_db()
    return task


@pytest.fixture
def questionnaire(db: None) -> Questionnaire:
    return Questionnaire.objects.create(
        code="post-op-knee",
        title="Suivi après opération du genou",
        title_en="Follow-up after knee surgery",
        title_de="Nachsorge nach Knieoperation",
        purpose=Questionnaire.Purpose.FOLLOW_UP,
        items=ITEMS,
    )


@pytest.fixture
def response(questionnaire: Questionnaire, record: Patient, patient: User) -> QuestionnaireResponse:
    return QuestionnaireResponse.objects.create(
        patient=record,
        questionnaire=questionnaire,
        questionnaire_version=questionnaire.version,
        answers={"pain": 8, "wound": "red", "temp": "37.8", "fever": False, "comment": "Ça tire"},
        author=patient,
        flagged=True,
    )


@pytest.fixture
def open_task(make_task: Callable[..., Task]) -> Task:
    """A call asked by `clinician` of `nurse`, not started."""
    return make_task(instructions="Ask about her weight this week.")


@pytest.fixture
def nurse2(make_user: Callable[..., User], organization: Any, record: Patient) -> User:
    """A second nurse on `record`'s care team."""
    user = make_user(Role.NURSE, email="nurse2@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user
