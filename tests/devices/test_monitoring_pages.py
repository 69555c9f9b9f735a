"""Monitoring pages: the clinicians' dashboard and a patient's monitoring tab (both portals)."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent
from apps.devices.models import Alert, ThresholdRule
from apps.devices.services.dashboard import PERIODS, EpochBucket, bucketed_series
from apps.devices.services.ingest import ingest
from apps.devices.services.registry import do_register_device
from apps.devices.units import MEASUREMENTS
from apps.records.models import Concept, Observation, Patient, Source
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import signed_in_client as _signed_in_client
from tests.conftest import verified_client as _verified_client

from .conftest import ago

DASHBOARD = "/clinic/monitoring/"
SYSTOLIC, DIASTOLIC, PULSE = "8480-6", "8462-4", "8867-4"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def verified_client(user: User) -> Client:
    client = _verified_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def signed_in_client(user: User) -> Client:
    client = _signed_in_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _tab(patient: Patient) -> str:
    return reverse("devices:patient_monitoring", args=[patient.pk])


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


def _readings(patient: Patient, code: str, values: list[tuple[dt.datetime, float]]) -> None:
    """Device readings stored directly (bulk): the pages only read them."""
    concept = Concept.objects.get(system="http://loinc.org", code=code)
    Observation.objects.bulk_create(
        Observation(
            patient=patient,
            code=concept,
            category="vital-signs",
            value=Decimal(str(value)),
            unit=MEASUREMENTS[code].unit,
            effective_at=at,
            source=Source.DEVICE,
            device_id="test-device",
        )
        for at, value in values
    )


def _rule(patient: Patient, code: str = SYSTOLIC, **fields: Any) -> ThresholdRule:
    fields.setdefault("kind", "above")
    fields.setdefault("limit", Decimal(160))
    fields.setdefault("severity", "critical")
    return ThresholdRule.objects.create(patient=patient, code=code, **fields)


def _send(message: Callable[..., Any], values: list[tuple[str, float, str]], **kw: Any) -> Any:
    return ingest([message(values, **kw)])


def _row(page: str, patient: Patient, code: str) -> str:
    """The dashboard's table row of one measurement of one patient."""
    card = page.split(f'data-patient="{patient.pk}"', 1)[1]
    match = re.search(rf'<tr class="[^"]*" data-code="{re.escape(code)}".*?</tr>', card, re.S)
    assert match is not None, f"no row for {code}"
    return match.group(0)


def _charts(page: str) -> list[dict[str, Any]]:
    match = re.search(
        r'<script id="monitoring-charts" type="application/json">(.*?)</script>', page
    )
    assert match is not None
    return json.loads(match.group(1))


# --- access ----------------------------------------------------------------------------------


def test_dashboard_is_for_clinicians_only(
    reference: None, record: Patient, patient: User, billing_user: User, admin_user: User
) -> None:
    for user, client in (
        (patient, signed_in_client(patient)),
        (billing_user, verified_client(billing_user)),
        (admin_user, verified_client(admin_user)),
    ):
        assert client.get(DASHBOARD).status_code == 404
        event = _last_event()
        assert (event.action, event.actor_id, event.detail["what"]) == (
            "denied",
            user.pk,
            "monitoring-dashboard",
        )


def test_outsider_sees_an_empty_dashboard_and_is_denied_the_tab(
    reference: None, record: Patient, outsider: User, message: Callable[..., Any]
) -> None:
    _rule(record)
    _send(message, [(SYSTOLIC, 182, "mm[Hg]"), (DIASTOLIC, 95, "mm[Hg]")], ts=ago(minutes=5))
    client = verified_client(outsider)

    page = client.get(DASHBOARD).content.decode()
    assert record.full_name not in page
    assert "None of your patients is monitored" in page
    assert _last_event().detail == {"what": "monitoring-dashboard", "patients": []}

    assert client.get(_tab(record)).status_code == 404
    event = _last_event()
    assert (event.action, event.actor_id, event.patient_id) == (
        "denied",
        outsider.pk,
        str(record.pk),
    )
    assert event.detail["what"] == "monitoring"


def test_patient_and_billing_are_denied_the_clinic_tab(
    reference: None, record: Patient, patient: User, billing_user: User
) -> None:
    _rule(record)
    assert signed_in_client(patient).get(_tab(record)).status_code == 404
    assert (_last_event().action, _last_event().actor_id) == ("denied", patient.pk)
    assert verified_client(billing_user).get(_tab(record)).status_code == 404
    assert (_last_event().action, _last_event().actor_id) == ("denied", billing_user.pk)


def test_staff_have_no_portal_tab(reference: None, clinician: User) -> None:
    assert verified_client(clinician).get("/record/monitoring/").status_code == 404
    assert _last_event().action == "denied"


# --- the dashboard ---------------------------------------------------------------------------


def test_dashboard_shows_latest_values_coloured_and_labelled_with_sparklines(
    reference: None, record: Patient, clinician: User, message: Callable[..., Any]
) -> None:
    # given a critical rule on the systolic pressure and two readings within a day
    _rule(record)
    _send(message, [(SYSTOLIC, 130, "mm[Hg]"), (DIASTOLIC, 80, "mm[Hg]")], ts=ago(hours=3))
    _send(message, [(SYSTOLIC, 182, "mm[Hg]"), (DIASTOLIC, 95, "mm[Hg]")], ts=ago(minutes=5))

    response = verified_client(clinician).get(DASHBOARD)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="{_tab(record)}">{record.full_name}</a>' in page
    systolic = _row(page, record, SYSTOLIC)
    assert "status-critical" in systolic and ">182</span>" in systolic and "mmHg" in systolic
    assert "Critical" in systolic  # colour is not the only cue
    assert re.search(r"<polyline points=\"[\d.]+,[\d.]+ [\d.]+,[\d.]+\"", systolic)
    assert "last 24 hours: from 130 to 182 mmHg" in systolic
    points = re.search(r'data-points="([^"]*)"', systolic)
    assert points is not None
    assert json.loads(html.unescape(points.group(1)))[-1][1] == 182.0  # for the script
    diastolic = _row(page, record, DIASTOLIC)
    assert "status-high" in diastolic and "High" in diastolic
    # the alert the reading raised is in the banner, with its inline acknowledgement form
    alert = Alert.objects.get()
    assert f'data-alert-id="{alert.pk}"' in page
    assert f'action="{reverse("devices:alert", args=[alert.pk])}"' in page
    assert "1 alert" in page and "highest: critical" in page
    event = _last_event()
    assert (event.action, event.actor_id) == ("read", clinician.pk)
    assert event.detail == {"what": "monitoring-dashboard", "patients": [record.pk]}


def test_normal_value_is_neutral_and_unmonitored_patients_are_not_listed(
    reference: None,
    record: Patient,
    record2: Patient,
    clinician: User,
    message: Callable[..., Any],
) -> None:
    _send(message, [(SYSTOLIC, 120, "mm[Hg]"), (DIASTOLIC, 75, "mm[Hg]")], ts=ago(minutes=5))
    page = verified_client(clinician).get(DASHBOARD).content.decode()
    row = _row(page, record, SYSTOLIC)
    assert "status-normal" in row and "Normal" in row
    # record2 is on the care team but has no device and no rule
    assert record2.full_name not in page
    assert "No alert needs attention." in page


def test_patients_with_unhandled_critical_alerts_come_first(
    reference: None, make_patient: Callable[..., Patient], clinician: User
) -> None:
    patients = []
    for name in ("Aebi", "Blanc", "Comte"):
        chart = make_patient(family_name=name)
        do_add_member(default_team(chart), clinician)
        patients.append(chart)
    for chart in patients:
        _rule(chart)
    critical = _rule(patients[2], code=PULSE, limit=Decimal(130))
    Alert.objects.create(
        patient=patients[2],
        rule=critical,
        code=PULSE,
        severity="critical",
        value=Decimal(150),
        unit="/min",
        measured_at=ago(minutes=1),
    )
    page = verified_client(clinician).get(DASHBOARD).content.decode()
    order = [
        page.index(f'class="monitor-patient{suffix}" data-patient="{p.pk}"')
        for p, suffix in ((patients[2], " severity-critical"), (patients[0], ""), (patients[1], ""))
    ]
    assert order == sorted(order)


def _monitored_patients(
    n: int, make_patient: Callable[..., Patient], clinician: User, start: int
) -> None:
    """`n` monitored patients of `clinician`, each with a device, readings, a rule, an alert."""
    for i in range(start, start + n):
        chart = make_patient(family_name=f"Monitored{i}")
        do_add_member(default_team(chart), clinician)
        do_register_device("blood_pressure", chart, None)
        rule = _rule(chart)
        _readings(chart, SYSTOLIC, [(ago(hours=h), 120 + h) for h in range(0, 30, 2)])
        _readings(chart, PULSE, [(ago(minutes=m), 70) for m in range(0, 600, 30)])
        Alert.objects.create(
            patient=chart,
            rule=rule,
            code=SYSTOLIC,
            severity="critical",
            value=Decimal(170),
            unit="mm[Hg]",
            measured_at=ago(minutes=3),
        )


def test_dashboard_queries_do_not_grow_with_patients(
    reference: None,
    make_patient: Callable[..., Patient],
    clinician: User,
    django_assert_num_queries: Any,
) -> None:
    client = verified_client(clinician)
    _monitored_patients(2, make_patient, clinician, 0)
    client.get(DASHBOARD)  # the first request of a session does extra work (second factor)
    with CaptureQueriesContext(connection) as two:
        page = client.get(DASHBOARD).content.decode()
    assert page.count('<li class="monitor-patient') == 2

    _monitored_patients(4, make_patient, clinician, 2)
    with django_assert_num_queries(len(two)):
        page = client.get(DASHBOARD).content.decode()
    assert page.count('<li class="monitor-patient') == 6
    assert page.count("data-alert-id=") == 6 + 1  # the banner's items and its template


def test_sparkline_series_are_bucket_averages(reference: None, record: Patient) -> None:
    # given a reading a minute for two hours
    now = timezone.now().replace(second=0, microsecond=0)
    _readings(record, PULSE, [(now - dt.timedelta(minutes=m), 60 + m % 10) for m in range(120)])
    # when averaged by quarter hour
    series = bucketed_series([record.pk], ["normal"], now - dt.timedelta(hours=3), 15 * 60)
    points = series[(record.pk, PULSE)]
    # then there are 8 or 9 points (depending on where the quarter hours fall), each an average
    assert 8 <= len(points) <= 9
    assert all(60 <= p.value <= 69 for p in points)
    assert points == sorted(points, key=lambda p: p.at)
    assert points[-1].at == now
    assert isinstance(EpochBucket("effective_at", 60).width, int)


# --- the patient's monitoring tab ------------------------------------------------------------


def test_a_month_of_heart_rate_stays_light(
    reference: None, record: Patient, clinician: User
) -> None:
    # given a patch sending a reading every two minutes for 30 days (21 600 readings)
    now = timezone.now()
    _readings(
        record, PULSE, [(now - dt.timedelta(minutes=2 * i), 60 + i % 40) for i in range(21_600)]
    )
    client = verified_client(clinician)
    for period, most in (("30d", 361), ("7d", 337), ("24h", 289)):
        page = client.get(_tab(record), {"period": period}).content.decode()
        (chart,) = _charts(page)
        assert chart["code"] == PULSE
        assert 0.9 * most <= len(chart["points"]) <= most <= 500, period
        assert PERIODS[period]
    assert 'aria-current="page">24 hours' in page


def test_clinic_tab_shows_limits_open_alerts_and_rules(
    reference: None, record: Patient, clinician: User, message: Callable[..., Any]
) -> None:
    _rule(record)
    _rule(record, code=DIASTOLIC, kind="below", limit=Decimal(50), severity="warning")
    _rule(record, code=SYSTOLIC, kind="rise", limit=Decimal(30), window=dt.timedelta(days=1))
    _send(message, [(SYSTOLIC, 182, "mm[Hg]"), (DIASTOLIC, 95, "mm[Hg]")], ts=ago(minutes=5))
    alert = Alert.objects.get()

    response = verified_client(clinician).get(_tab(record))

    assert response.status_code == 200
    page = response.content.decode()
    charts = {chart["code"]: chart for chart in _charts(page)}
    assert charts[SYSTOLIC]["limits"] == [
        {"kind": "above", "value": 160.0, "text": "160", "severity": "critical"}
    ]
    assert charts[DIASTOLIC]["limits"] == [
        {"kind": "below", "value": 50.0, "text": "50", "severity": "warning"}
    ]
    assert charts[SYSTOLIC]["points"][-1]["v"] == 182.0
    assert f'data-alert-id="{alert.pk}"' in page
    assert "Threshold rules" in page and "above 160 mmHg" in page and "Alert above 160 mmHg" in page
    assert reverse("devices:patient_devices", args=[record.pk]) in page
    assert f'href="/clinic/patients/{record.pk}/monitoring/" aria-current="page">Monitoring' in page
    event = _last_event()
    assert (event.action, event.actor_id, event.patient_id) == (
        "read",
        clinician.pk,
        str(record.pk),
    )
    assert event.detail["what"] == "monitoring"


def test_portal_shows_charts_and_plain_trends_without_alerts_or_rules(
    reference: None, record: Patient, patient: User
) -> None:
    # given last week's readings around 138 and this week's around 132
    _rule(record)
    _readings(record, SYSTOLIC, [(ago(days=d, hours=1), 138) for d in range(7, 14)])
    _readings(record, SYSTOLIC, [(ago(days=d, hours=1), v) for d, v in ((1, 130), (2, 134))])
    _readings(record, PULSE, [(ago(days=9), 70)])  # nothing this week

    response = signed_in_client(patient).get("/record/monitoring/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Your average this week: 132 mmHg, last week 138 mmHg." in page
    charts = {chart["code"]: chart for chart in _charts(page)}
    assert set(charts) == {SYSTOLIC}  # the 7-day default period
    assert charts[SYSTOLIC]["limits"] == []
    assert "Threshold rules" not in page and "data-alert-banner" not in page
    page = signed_in_client(patient).get("/record/monitoring/?period=30d").content.decode()
    assert "No reading this week; your average last week: 70 /min." in page
    event = _last_event()
    assert (event.action, event.actor_id, event.patient_id) == ("read", patient.pk, str(record.pk))


def test_navigation_and_tab_links(
    reference: None, record: Patient, clinician: User, patient: User
) -> None:
    page = verified_client(clinician).get("/clinic/").content.decode()
    assert f'href="{DASHBOARD}"' in page
    page = signed_in_client(patient).get("/record/").content.decode()
    assert 'href="/record/monitoring/"' in page
    assert f'href="{DASHBOARD}"' not in page


def test_nurse_with_a_french_page(
    reference: None, record: Patient, make_user: Callable[..., User], organization: Organization
) -> None:
    nurse = make_user(Role.NURSE, organization=organization)
    do_add_member(default_team(record), nurse)
    _rule(record)
    client = _verified_client(nurse)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    with translation.override("fr"):
        response = client.get(DASHBOARD)
    assert response.status_code == 200
    assert record.full_name in response.content.decode()
