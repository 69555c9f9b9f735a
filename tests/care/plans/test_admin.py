"""The care-plan admin: administrators edit pathways with their lines (each save raises the
version; a threshold must be a valid devices rule); care plans are read-only, metadata only,
and opening one is audited against its patient."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.forms.models import model_to_dict
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import CarePlan, Pathway
from apps.care.services.plans import do_create_plan
from apps.records.models import Patient
from tests.care.conftest import access_as
from tests.conftest import verified_client

LINES = {
    "goals": (
        "description",
        "description_en",
        "description_de",
        "measure",
        "target_low",
        "target_high",
        "unit",
        "due_after_days",
        "order",
    ),
    "activities": (
        "title",
        "title_en",
        "title_de",
        "detail",
        "kind",
        "role",
        "task_kind",
        "offset_days",
        "repeat_days",
        "order",
    ),
    "thresholds": (
        "code",
        "kind",
        "limit",
        "window",
        "hysteresis",
        "n_of",
        "m_of",
        "severity",
    ),
    "questionnaires": ("questionnaire", "days"),
}


@pytest.fixture
def client(admin_user: User) -> Client:
    client = verified_client(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _form(pathway: Pathway, **changes: Any) -> dict[str, Any]:
    """The admin's change form of `pathway` as the browser would send it back."""
    data: dict[str, Any] = {
        name: value
        for name, value in model_to_dict(pathway).items()
        if name not in ("id", "version", "updated_at") and value is not None
    }
    data["medication_reminders"] = "on" if pathway.medication_reminders else ""
    data["active"] = "on" if pathway.active else ""
    for prefix, fields in LINES.items():
        rows = list(getattr(pathway, prefix).all())
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": len(rows),
                f"{prefix}-INITIAL_FORMS": len(rows),
                f"{prefix}-MIN_NUM_FORMS": 0,
                f"{prefix}-MAX_NUM_FORMS": 1000,
            }
        )
        for index, row in enumerate(rows):
            data[f"{prefix}-{index}-id"] = row.pk
            data[f"{prefix}-{index}-pathway"] = pathway.pk
            for field in fields:
                value = model_to_dict(row)[field]
                if field == "days":
                    value = str(value)
                data[f"{prefix}-{index}-{field}"] = "" if value is None else value
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_saving_a_pathway_raises_its_version(client: Client, pathways: dict[str, Pathway]) -> None:
    pathway = pathways["post-operative"]
    url = f"/admin/care/pathway/{pathway.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, _form(pathway, follow_up_days=10, **{"thresholds-0-limit": "38.2"}))
    assert response.status_code == 302
    pathway.refresh_from_db()
    assert (pathway.follow_up_days, pathway.version) == (10, 2)
    assert str(pathway.thresholds.get().limit.normalize()) == "38.2"


def test_a_threshold_that_is_no_devices_rule_is_refused(
    client: Client, pathways: dict[str, Pathway]
) -> None:
    pathway = pathways["copd"]
    url = f"/admin/care/pathway/{pathway.pk}/change/"
    response = client.post(url, _form(pathway, **{"thresholds-0-limit": "140"}))
    assert response.status_code == 200
    assert "The limit must lie between 40 and 100 %" in response.content.decode()
    pathway.refresh_from_db()
    assert pathway.version == 1


def test_care_plans_are_read_only_metadata_and_opening_one_is_audited(
    client: Client,
    record: Patient,
    coordinator: User,
    admin_user: User,
    pathways: dict[str, Pathway],
) -> None:
    plan = do_create_plan(
        access_as(coordinator, record),
        title="Titre confidentiel",
        description="Description très confidentielle",
        start_date=record.birth_date.replace(year=2026),
        coordinator=coordinator,
        follow_up_days=30,
    )
    listing = client.get("/admin/care/careplan/")
    assert listing.status_code == 200
    assert "Titre confidentiel" not in listing.content.decode()
    page = client.get(f"/admin/care/careplan/{plan.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Titre confidentiel" not in html
    assert "Description très confidentielle" not in html
    assert AuditEvent.objects.filter(
        action=Action.READ,
        actor_id=admin_user.pk,
        object_type="care.careplan",
        object_id=str(plan.pk),
        patient_id=str(record.pk),
    ).exists()
    assert client.get("/admin/care/careplan/add/").status_code == 403
    assert client.post(f"/admin/care/careplan/{plan.pk}/delete/").status_code == 403
    assert CarePlan.objects.filter(pk=plan.pk).exists()
