"""The thresholds page: physicians set a patient's rules, the care team reads them."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent
from apps.devices.models import ThresholdRule
from apps.devices.services.rules import do_create_rule
from apps.records.access import get_patient_for_user
from apps.records.models import CodeSystem, Concept, Condition, Patient
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import signed_in_client as _signed_in_client
from tests.conftest import verified_client as _verified_client

SYSTOLIC, SPO2, WEIGHT, GLUCOSE = "8480-6", "59408-5", "29463-7", "15074-8"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """The assertions below read the English texts (the default language is French)."""
    with translation.override("en"):
        yield


@pytest.fixture
def nurse(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    """A nurse on `record`'s care team."""
    user = make_user(Role.NURSE, email="nurse@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


def verified_client(user: User) -> Client:
    client = _verified_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _url(patient: Patient) -> str:
    return reverse("devices:thresholds", args=[patient.pk])


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "code": SYSTOLIC,
        "kind": "above",
        "limit": "160",
        "window_value": "",
        "window_unit": "days",
        "n_of": "2",
        "m_of": "3",
        "hysteresis": "10",
        "severity": "warning",
        "escalate_minutes": "",
    }
    return data | overrides


def _rule(patient: Patient, user: User, **fields: Any) -> ThresholdRule:
    access = get_patient_for_user(user, patient.pk, action=None)
    values = {"code": SYSTOLIC, "kind": "above", "limit": Decimal(160), "severity": "warning"}
    return do_create_rule(access, values | fields)


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


# --- physicians add rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected", "words"),
    [
        (
            {},
            {"kind": "above", "limit": Decimal(160), "window": None, "n_of": 2, "m_of": 3},
            "above 160 mm[Hg]",
        ),
        (
            {"code": SPO2, "kind": "below", "limit": "92", "hysteresis": "2", "n_of": "1"},
            {"kind": "below", "limit": Decimal(92), "window": None, "n_of": 1, "m_of": 3},
            "below 92 %",
        ),
        (
            {"code": WEIGHT, "kind": "rise", "limit": "2", "window_value": "3", "hysteresis": ""},
            {"kind": "rise", "limit": Decimal(2), "window": dt.timedelta(days=3)},
            "rises by more than 2 kg within 3 days",
        ),
        (
            {
                "code": SYSTOLIC,
                "kind": "fall",
                "limit": "25",
                "window_value": "6",
                "window_unit": "hours",
                "escalate_minutes": "30",
                "severity": "critical",
            },
            {
                "kind": "fall",
                "window": dt.timedelta(hours=6),
                "escalate_after": dt.timedelta(minutes=30),
                "severity": "critical",
            },
            "falls by more than 25 mm[Hg] within 6 hours",
        ),
        (
            {"code": GLUCOSE, "kind": "below", "limit": "3.9", "hysteresis": "0.5", "n_of": "1"},
            {"limit": Decimal("3.9"), "hysteresis": Decimal("0.5")},
            "below 3.9 mmol/L",
        ),
    ],
)
def test_physician_adds_each_kind_of_rule(
    form: dict[str, str],
    expected: dict[str, Any],
    words: str,
    reference: None,
    record: Patient,
    clinician: User,
) -> None:
    client = verified_client(clinician)
    # when
    response = client.post(_url(record), _form(**form))
    # then
    assert response.status_code == 302 and response["Location"] == _url(record)
    rule = ThresholdRule.objects.get(patient=record)
    assert {key: getattr(rule, key) for key in expected} == expected
    assert rule.created_by == clinician and rule.active and not rule.template
    page = client.get(_url(record)).content.decode()
    assert "The rule was added." in page
    assert words in page
    event = AuditEvent.objects.get(object_type="devices.thresholdrule", object_id=str(rule.pk))
    assert (event.action, event.actor_id, event.patient_id) == (
        "create",
        clinician.pk,
        str(record.pk),
    )
    assert event.detail["change"] == "create"


def test_page_shows_the_rule_details(reference: None, record: Patient, clinician: User) -> None:
    _rule(record, clinician, n_of=2, m_of=3, hysteresis=Decimal(10))
    _rule(
        record,
        clinician,
        limit=Decimal(180),
        severity="critical",
        escalate_after=dt.timedelta(minutes=2),
    )
    ThresholdRule.objects.filter(limit=180).update(firing=True)
    page = html.unescape(verified_client(clinician).get(_url(record)).content.decode())
    assert "2 of the last 3" in page and "10 mm[Hg]" in page
    assert f"default ({settings.DEVICES_ESCALATION_MINUTES['warning']} min)" in page
    assert "2 min" in page
    assert "data-firing" in page and page.count("data-firing") == 1
    assert "Add a rule" in page and "Only the patient's physicians" not in page
    event = _last_event()
    assert (event.action, event.actor_id, event.detail["what"]) == (
        "read",
        clinician.pk,
        "thresholds",
    )


def test_n_above_m_is_refused_with_a_message(
    reference: None, record: Patient, clinician: User
) -> None:
    response = verified_client(clinician).post(_url(record), _form(n_of="4", m_of="3"))
    assert response.status_code == 400
    assert "N cannot be more than M." in response.content.decode()
    assert not ThresholdRule.objects.exists()


def test_a_rise_without_a_period_is_refused(
    reference: None, record: Patient, clinician: User
) -> None:
    response = verified_client(clinician).post(
        _url(record), _form(code=WEIGHT, kind="rise", limit="2")
    )
    assert response.status_code == 400
    assert "A rise or fall rule needs a period." in response.content.decode()
    assert not ThresholdRule.objects.exists()


def test_a_limit_outside_the_measurable_range_is_refused(
    reference: None, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    response = client.post(_url(record), _form(code=SPO2, limit="120", hysteresis="2"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "The limit must lie between 40 and 100 %." in page
    assert 'value="120"' in page  # the form keeps what was typed
    # a period longer than the service allows is its refusal too
    response = client.post(
        _url(record), _form(code=WEIGHT, kind="rise", limit="2", window_value="40")
    )
    assert "between 1 hour and 30 days" in response.content.decode()
    assert not ThresholdRule.objects.exists()


# --- edit, pause, resume ----------------------------------------------------------------------


def test_physician_edits_a_rule(reference: None, record: Patient, clinician: User) -> None:
    rule = _rule(record, clinician, window=None)
    client = verified_client(clinician)
    url = reverse("devices:threshold_edit", args=[record.pk, rule.pk])
    page = client.get(url).content.decode()
    assert 'value="160"' in page and "Limit (mm[Hg])" in page
    # when
    response = client.post(url, _form(limit="170", severity="critical", n_of="1", m_of="1"))
    # then
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.limit, rule.severity, rule.n_of, rule.code) == (
        Decimal(170),
        "critical",
        1,
        SYSTOLIC,
    )
    event = _last_event()
    assert (event.action, event.detail["change"], event.object_id) == (
        "update",
        "update",
        str(rule.pk),
    )
    # an impossible change is shown on the edit page
    response = client.post(url, _form(limit="400"))
    assert response.status_code == 400
    assert "The limit must lie between 20 and 300 mm[Hg]." in response.content.decode()


def test_pause_and_resume(reference: None, record: Patient, clinician: User) -> None:
    rule = _rule(record, clinician)
    ThresholdRule.objects.filter(pk=rule.pk).update(firing=True)
    client = verified_client(clinician)
    url = reverse("devices:threshold_active", args=[record.pk, rule.pk])
    # pause
    response = client.post(url, {"active": "0"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert not rule.active and not rule.firing
    assert _last_event().detail["change"] == "pause"
    page = client.get(_url(record)).content.decode()
    assert "Paused: " in page and "above 160 mm[Hg]." in page
    assert ">Resume<" in page
    # resume
    client.post(url, {"active": "1"})
    rule.refresh_from_db()
    assert rule.active
    assert _last_event().detail["change"] == "resume"
    assert client.get(url).status_code == 405


# --- defaults per condition -------------------------------------------------------------------


def test_defaults_suggested_by_the_conditions_apply_once(
    reference: None, record: Patient, clinician: User
) -> None:
    failure, _ = Concept.objects.get_or_create(
        system=CodeSystem.ICD10, code="I50.9", defaults={"display": "Heart failure"}
    )
    Condition.objects.create(patient=record, code=failure)
    client = verified_client(clinician)
    page = client.get(_url(record)).content.decode()
    assert 'data-template="heart_failure" data-suggested' in page
    assert 'data-template="general" data-suggested' not in page
    assert "rises by more than 2 kg within 3 days" in page
    apply = reverse("devices:threshold_apply", args=[record.pk])
    # when
    response = client.post(apply, {"template": "heart_failure"}, follow=True)
    # then
    assert "4 rules added." in response.content.decode()
    rules = ThresholdRule.objects.filter(patient=record)
    assert rules.count() == 4 and set(rules.values_list("template", flat=True)) == {"heart_failure"}
    creates = AuditEvent.objects.filter(object_type="devices.thresholdrule", action="create")
    assert creates.count() == 4
    # a second time adds nothing
    response = client.post(apply, {"template": "heart_failure"}, follow=True)
    assert "0 rules added." in response.content.decode()
    assert rules.count() == 4
    # and an unknown set is an error on the page
    response = client.post(apply, {"template": "nonsense"})
    assert response.status_code == 400 and "Unknown set of defaults." in response.content.decode()


# --- who may do what --------------------------------------------------------------------------


def test_nurse_reads_the_rules_but_cannot_change_them(
    reference: None, record: Patient, clinician: User, nurse: User
) -> None:
    rule = _rule(record, clinician)
    client = verified_client(nurse)
    page = html.unescape(client.get(_url(record)).content.decode())
    assert "above 160 mm[Hg]" in page
    assert "Only the patient's physicians can change thresholds." in page
    assert 'id="add-rule"' not in page and "threshold_apply" not in page
    assert reverse("devices:threshold_active", args=[record.pk, rule.pk]) not in page
    assert reverse("devices:threshold_apply", args=[record.pk]) not in page
    # her crafted requests are refused (403), audited, and change nothing
    crafted = [
        (_url(record), _form(limit="150")),
        (reverse("devices:threshold_apply", args=[record.pk]), {"template": "general"}),
        (reverse("devices:threshold_active", args=[record.pk, rule.pk]), {"active": "0"}),
        (reverse("devices:threshold_edit", args=[record.pk, rule.pk]), _form(limit="150")),
    ]
    for url, data in crafted:
        response = client.post(url, data)
        assert response.status_code == 403
        assert "Only the patient's physicians can change thresholds." in response.content.decode()
        event = _last_event()
        assert (event.action, event.outcome, event.actor_id) == ("denied", "denied", nurse.pk)
    rule.refresh_from_db()
    assert ThresholdRule.objects.count() == 1 and rule.active and rule.limit == 160
    # the edit page sends her back to the list
    edit = client.get(reverse("devices:threshold_edit", args=[record.pk, rule.pk]))
    assert edit.status_code == 302 and edit["Location"] == _url(record)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("who", ["outsider", "patient"])
def test_outsider_and_patient_get_404_and_are_audited(
    method: str,
    who: str,
    reference: None,
    record: Patient,
    clinician: User,
    outsider: User,
    patient: User,
) -> None:
    _rule(record, clinician)
    client = verified_client(outsider) if who == "outsider" else _signed_in_client(patient)
    before = AuditEvent.objects.count()
    response = getattr(client, method)(_url(record), _form(limit="150"))
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before + 1
    event = _last_event()
    assert (event.action, event.outcome) == ("denied", "denied")
    assert ThresholdRule.objects.count() == 1


def test_outsider_cannot_apply_defaults_nor_pause(
    reference: None, record: Patient, clinician: User, outsider: User
) -> None:
    rule = _rule(record, clinician)
    client = verified_client(outsider)
    assert (
        client.post(
            reverse("devices:threshold_apply", args=[record.pk]), {"template": "general"}
        ).status_code
        == 404
    )
    assert _last_event().action == "denied"
    assert (
        client.post(
            reverse("devices:threshold_active", args=[record.pk, rule.pk]), {"active": "0"}
        ).status_code
        == 404
    )
    assert _last_event().action == "denied"
    rule.refresh_from_db()
    assert rule.active and ThresholdRule.objects.count() == 1


def test_a_rule_of_another_patient_is_404(
    reference: None, record: Patient, record2: Patient, clinician: User
) -> None:
    # the physician is on both teams; the rule is record2's, the URL says record
    other = _rule(record2, clinician)
    client = verified_client(clinician)
    for name, data in [
        ("threshold_edit", _form(limit="150")),
        ("threshold_active", {"active": "0"}),
    ]:
        url = reverse(f"devices:{name}", args=[record.pk, other.pk])
        assert client.post(url, data).status_code == 404
        event = _last_event()
        assert (event.action, event.outcome, event.object_id) == ("denied", "denied", str(other.pk))
    assert (
        client.get(reverse("devices:threshold_edit", args=[record.pk, other.pk])).status_code == 404
    )
    other.refresh_from_db()
    assert other.active and other.limit == 160


def test_page_uses_a_constant_number_of_queries(
    reference: None, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    _rule(record, clinician)

    def count() -> int:
        client.get(_url(record))  # the first request of a session does extra work
        with CaptureQueriesContext(connection) as queries:
            assert client.get(_url(record)).status_code == 200
        return len(queries)

    one = count()
    for limit, code in [("92", SPO2), ("3.9", GLUCOSE), ("120", "8867-4"), ("38.5", "8310-5")]:
        _rule(record, clinician, code=code, kind="below", limit=Decimal(limit))
    _rule(
        record, clinician, code=WEIGHT, kind="rise", limit=Decimal(2), window=dt.timedelta(days=3)
    )
    assert ThresholdRule.objects.filter(patient=record).count() == 6
    assert count() == one


def test_limits_are_written_as_the_reader_writes_numbers(
    reference: None, record: Patient, clinician: User
) -> None:
    _rule(record, clinician, code="8310-5", limit=Decimal("38.5"), hysteresis=Decimal("0.3"))
    client = verified_client(clinician)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    with translation.override("fr"):
        page = client.get(_url(record)).content.decode()
    assert "38,5 Cel" in page and "0,3 Cel" in page
    assert "38.5 Cel" not in page
