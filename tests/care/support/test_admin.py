"""The admin: rules are listed by code and version; editing one saves the next version and
deactivates the previous (proposals keep theirs); parameters and reasons are validated per kind;
proposals are read-only metadata, and opening one is audited against its patient."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Proposal, Rule
from apps.care.services.support.engine import evaluate_patient
from apps.records.models import Patient
from tests.conftest import verified_client

from .conftest import NOW, TODAY

CODE = "drug-interaction-major"


@pytest.fixture
def client(admin_user: User) -> Client:
    admin_user.is_superuser = True
    admin_user.save()
    client = verified_client(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def form_data(rule: Rule, **changes: Any) -> dict[str, Any]:
    data = {
        "code": rule.code,
        "kind": rule.kind,
        "title": rule.title,
        "title_en": rule.title_en,
        "title_de": rule.title_de,
        "rationale": rule.rationale,
        "rationale_en": rule.rationale_en,
        "rationale_de": rule.rationale_de,
        "parameters": json.dumps(rule.parameters),
        "severity": rule.severity,
        "action": rule.action,
        "task_kind": rule.task_kind,
        "reference": rule.reference,
        "active": "on" if rule.active else "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_the_rule_list_shows_code_version_and_kind(client: Client, rules: dict[str, Rule]) -> None:
    html = client.get("/admin/care/rule/").content.decode()
    assert CODE in html and "interaction" in html and "sustained" in html


def test_editing_a_rule_saves_a_new_version(
    client: Client,
    rules: dict[str, Rule],
    admin_user: User,
    record: Patient,
    take: Callable[..., Any],
) -> None:
    v1 = rules[CODE]
    take(record, "Warfarine 5 mg cp")
    take(record, "Ibuprofène 400 mg cp", started_on=TODAY - dt.timedelta(days=1))
    proposal = evaluate_patient(record, now=NOW)[0]

    response = client.post(
        f"/admin/care/rule/{v1.pk}/change/",
        form_data(v1, title="Interaction à revoir", parameters='{"min_severity": "moderate"}'),
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    versions = list(Rule.objects.filter(code=CODE).order_by("version"))
    assert [(r.version, r.active) for r in versions] == [(1, False), (2, True)]
    assert versions[0].title == "Interaction médicamenteuse à évaluer"  # untouched
    assert versions[1].title == "Interaction à revoir"
    assert versions[1].parameters == {"min_severity": "moderate"}
    assert versions[1].created_by == admin_user
    proposal.refresh_from_db()
    assert proposal.rule == versions[0]


def test_bad_parameters_are_explained(client: Client, rules: dict[str, Rule]) -> None:
    rule = rules["bp-above-target-on-treatment"]
    bad = dict(rule.parameters, days=1, code="8480-5", colour="red")
    response = client.post(
        f"/admin/care/rule/{rule.pk}/change/", form_data(rule, parameters=json.dumps(bad))
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "days: must be between 2 and 60, not 1" in html
    assert "LOINC code &#x27;8480-5&#x27; has a wrong check digit" in html
    assert "colour: is not a parameter of this kind of rule" in html
    assert Rule.objects.filter(code=rule.code).count() == 1


def test_unknown_placeholders_and_bad_json_are_refused(
    client: Client, rules: dict[str, Rule]
) -> None:
    rule = rules[CODE]
    response = client.post(
        f"/admin/care/rule/{rule.pk}/change/", form_data(rule, rationale="{drug} et {dose}")
    )
    assert "unknown placeholder(s) dose" in response.content.decode()
    response = client.post(f"/admin/care/rule/{rule.pk}/change/", form_data(rule, parameters="{"))
    assert "Not valid JSON" in response.content.decode()
    assert Rule.objects.filter(code=rule.code).count() == 1


def test_a_new_rule_starts_at_version_one_and_codes_are_unique(
    client: Client, rules: dict[str, Rule]
) -> None:
    rule = rules[CODE]
    data = form_data(
        rule, code="interaction-contraindicated", parameters='{"min_severity": "contraindicated"}'
    )
    assert client.post("/admin/care/rule/add/", data).status_code == 302
    assert Rule.objects.get(code="interaction-contraindicated").version == 1
    response = client.post("/admin/care/rule/add/", form_data(rule))
    assert "A rule with this code exists" in response.content.decode()


def test_earlier_versions_are_read_only(
    client: Client, rules: dict[str, Rule], admin_user: User
) -> None:
    from apps.care.services.support.rules import do_save_rule_version, rule_data

    v1 = rules[CODE]
    do_save_rule_version(dict(rule_data(v1), title="v2"), admin_user)
    html = client.get(f"/admin/care/rule/{v1.pk}/change/").content.decode()
    assert 'name="title"' not in html
    assert client.post(f"/admin/care/rule/{v1.pk}/change/", form_data(v1)).status_code == 403
    assert Rule.objects.filter(code=CODE).count() == 2


def test_proposals_are_read_only_metadata_and_opening_one_is_audited(
    client: Client,
    rules: dict[str, Rule],
    record: Patient,
    take: Callable[..., Any],
    admin_user: User,
) -> None:
    take(record, "Warfarine 5 mg cp")
    take(record, "Ibuprofène 400 mg cp")
    proposal = evaluate_patient(record, now=NOW)[0]
    assert client.get("/admin/care/proposal/").status_code == 200
    response = client.get(f"/admin/care/proposal/{proposal.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ibuprofène" not in html and "Warfarine" not in html  # no clinical content
    assert AuditEvent.objects.filter(
        action=Action.READ,
        actor_id=admin_user.pk,
        object_type="care.proposal",
        object_id=str(proposal.pk),
        patient_id=str(record.pk),
    ).exists()
    assert client.post(f"/admin/care/proposal/{proposal.pk}/delete/").status_code == 403
    assert Proposal.objects.filter(pk=proposal.pk).exists()
