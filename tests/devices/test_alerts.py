"""Alerts from ingested readings: raised once, re-used, cleared, handled, escalated, audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.http import Http404
from django.utils import timezone, translation

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.core import presence
from apps.devices.models import Alert, OnCallShift, ThresholdRule
from apps.devices.services import DeviceError
from apps.devices.services.alerts import (
    describe,
    do_acknowledge_alert,
    do_resolve_alert,
    escalate_due,
    get_alert_for_user,
    notify_offline,
)
from apps.devices.services.ingest import RawMessage, ingest
from apps.notifications.models import Notification
from apps.records.access import get_patient_for_user
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.records.timeline import timeline_page

from .conftest import ago

Make = Callable[..., RawMessage]
SYS = "8480-6"


def bp(systolic: float, minutes_ago: float = 1) -> list[tuple[str, float, str]]:
    return [(SYS, systolic, "mm[Hg]"), ("8462-4", 80, "mm[Hg]")]


def send(message: Make, *systolics: float, start: float = 60) -> list[int]:
    """One message per value, a minute apart, oldest first; the alerts raised."""
    raised: list[int] = []
    for i, value in enumerate(systolics):
        result = ingest([message(bp(value), ts=ago(minutes=start - i))])
        raised += result.alerts
    return raised


@pytest.fixture
def rule(record: Patient) -> ThresholdRule:
    return ThresholdRule.objects.create(
        patient=record,
        code=SYS,
        kind="above",
        limit=Decimal(160),
        severity="critical",
        hysteresis=Decimal(10),
    )


def test_a_reading_over_the_limit_raises_one_alert_with_its_reading(
    device: Any, message: Make, rule: ThresholdRule
) -> None:
    raised = send(message, 150, 172)

    alert = Alert.objects.get()
    assert raised == [alert.pk]
    assert (alert.state, alert.severity, alert.value, alert.unit) == (
        "open",
        "critical",
        Decimal(172),
        "mm[Hg]",
    )
    assert [o.value for o in alert.readings.all()] == [Decimal(172)]
    assert alert.escalate_at is not None
    rule.refresh_from_db()
    assert rule.firing is True
    assert AuditEvent.objects.filter(object_type="devices.alert", action="create").count() == 1
    with translation.override("en"):
        assert describe(alert) == "Systolic blood pressure 172 mm[Hg], above 160 mm[Hg]"


def test_readings_that_stay_high_do_not_flood(
    device: Any, message: Make, rule: ThresholdRule
) -> None:
    send(message, 172, 175, 168, 158, 171)  # 158 is within the 10 mmHg hysteresis

    assert Alert.objects.count() == 1


def test_back_to_normal_clears_and_a_new_episode_reuses_an_unhandled_alert(
    device: Any, message: Make, rule: ThresholdRule
) -> None:
    send(message, 172, 140)
    alert = Alert.objects.get()
    assert alert.cleared_at is not None
    rule.refresh_from_db()
    assert rule.firing is False

    send(message, 181, start=30)

    alert.refresh_from_db()
    assert Alert.objects.count() == 1  # still nobody handled the first one: same alert
    assert (alert.value, alert.cleared_at) == (Decimal(181), None)
    assert alert.readings.count() == 2


def test_a_new_episode_after_the_alert_was_handled_raises_a_new_one(
    device: Any, message: Make, rule: ThresholdRule, clinician: User
) -> None:
    send(message, 172, 140)
    do_resolve_alert(Alert.objects.get(), clinician, "Called the patient")

    send(message, 181, start=30)

    assert Alert.objects.count() == 2


def test_one_batch_with_a_gateway_backlog_is_replayed_in_time_order(
    device: Any, message: Make, record: Patient
) -> None:
    ThresholdRule.objects.create(
        patient=record,
        code=SYS,
        kind="above",
        limit=Decimal(160),
        n_of=2,
        m_of=3,
        severity="warning",
    )
    backlog = [message(bp(v), ts=ago(minutes=50 - i)) for i, v in enumerate([150, 165, 150, 166])]

    result = ingest(list(reversed(backlog)))  # arrival order does not matter

    alert = Alert.objects.get()
    assert result.alerts == [alert.pk]
    assert sorted(o.value for o in alert.readings.all()) == [Decimal(165), Decimal(166)]


def test_paused_rules_and_other_measurements_raise_nothing(
    device: Any, message: Make, rule: ThresholdRule
) -> None:
    ThresholdRule.objects.filter(pk=rule.pk).update(active=False)
    send(message, 200)
    assert not Alert.objects.exists()


def test_acknowledge_with_a_note_stops_the_escalation(
    device: Any, message: Make, rule: ThresholdRule, clinician: User
) -> None:
    send(message, 175)
    alert = Alert.objects.get()

    do_acknowledge_alert(alert, clinician, "Patient called, repeat in 1 h")

    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.escalate_at) == (
        "acknowledged",
        clinician,
        None,
    )
    assert "Patient called, repeat in 1 h" in alert.note
    with pytest.raises(DeviceError):
        do_acknowledge_alert(alert, clinician)
    assert escalate_due(timezone.now() + dt.timedelta(hours=1)) == 0


def test_unacknowledged_alert_escalates_along_the_on_call_order(
    device: Any,
    message: Make,
    rule: ThresholdRule,
    record: Patient,
    make_user: Any,
    organization: Any,
) -> None:
    # given two more physicians on the care team, on call in this order
    first = make_user(Role.PHYSICIAN, email="first@example.test", organization=organization)
    second = make_user(Role.NURSE, email="second@example.test", organization=organization)
    for user in (first, second):
        do_add_member(default_team(record), user)
    now = timezone.now()
    OnCallShift.objects.create(
        user=second,
        starts_at=now - dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(hours=8),
        rank=2,
    )
    OnCallShift.objects.create(
        user=first,
        starts_at=now - dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(hours=8),
        rank=1,
    )
    send(message, 175)
    alert = Alert.objects.get()

    # when the delay runs out, twice
    assert escalate_due(now) == 0  # not yet due
    assert escalate_due(alert.escalate_at) == 1
    alert.refresh_from_db()
    assert (alert.state, alert.escalation_level) == ("escalated", 1)
    assert list(alert.escalated_to.all()) == [first]
    assert Notification.objects.filter(user=first, kind="device.alert").count() == 1
    assert escalate_due(alert.escalate_at) == 1

    # then it went to the first, then the second on call
    alert.refresh_from_db()
    assert set(alert.escalated_to.all()) == {first, second}
    assert alert.escalation_level == 2
    assert Notification.objects.filter(user=second, kind="device.alert").count() == 1
    assert escalate_due(timezone.now() + dt.timedelta(days=1)) == 0  # nobody left: it stays


def test_escalation_skips_on_call_staff_outside_the_care_team(
    device: Any, message: Make, rule: ThresholdRule, outsider: User
) -> None:
    now = timezone.now()
    OnCallShift.objects.create(
        user=outsider, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=1)
    )
    send(message, 175)
    alert = Alert.objects.get()

    escalate_due(alert.escalate_at)

    assert not Notification.objects.filter(user=outsider).exists()


def test_offline_members_get_a_notification_online_ones_the_live_banner(
    device: Any,
    message: Make,
    rule: ThresholdRule,
    record: Patient,
    clinician: User,
    make_user: Any,
    organization: Any,
) -> None:
    nurse = make_user(Role.NURSE, email="nurse@example.test", organization=organization)
    do_add_member(default_team(record), nurse)
    presence.connected(nurse.pk)
    send(message, 175)

    sent = notify_offline([Alert.objects.get().pk])

    assert sent == 1
    notification = Notification.objects.get(kind="device.alert")
    assert notification.user == clinician
    assert "175" not in notification.title + notification.body  # may leave by SMS: no values


def test_alerts_appear_in_the_care_teams_timeline_not_the_patients(
    device: Any, message: Make, rule: ThresholdRule, record: Patient, clinician: User, patient: User
) -> None:
    send(message, 175)

    _page, entries = timeline_page(
        get_patient_for_user(clinician, record.pk), kinds_wanted=["alert"]
    )
    _page, own = timeline_page(get_patient_for_user(patient, record.pk), kinds_wanted=["alert"])

    assert [e.kind for e in entries] == ["alert"]
    assert entries[0].flag == "HH"
    assert own == []


def test_outsiders_and_the_patient_cannot_open_an_alert(
    device: Any, message: Make, rule: ThresholdRule, outsider: User, patient: User, clinician: User
) -> None:
    send(message, 175)
    alert = Alert.objects.get()

    for user in (outsider, patient):
        with pytest.raises(Http404):
            get_alert_for_user(user, alert.pk)
    found, _access = get_alert_for_user(clinician, alert.pk)

    assert found == alert
    denied = AuditEvent.objects.filter(action="denied", object_type="devices.alert")
    assert {e.actor_id for e in denied} >= {outsider.pk}
    assert AuditEvent.objects.filter(
        action="read", actor_id=clinician.pk, object_id=str(alert.pk)
    ).exists()


def test_acknowledging_from_the_dashboard_returns_there_but_never_off_site(
    device: Any, message: Make, rule: ThresholdRule, clinician: User
) -> None:
    from tests.conftest import verified_client

    send(message, 175)
    alert = Alert.objects.get()
    client = verified_client(clinician)
    url = f"/clinic/alerts/{alert.pk}/"

    back = client.post(url, {"note": "vu", "next": "/clinic/monitoring/"})
    resolved = client.post(url, {"resolve": "1", "next": "https://evil.example/"})

    assert (back.status_code, back["Location"]) == (302, "/clinic/monitoring/")
    assert resolved["Location"] == url
    alert.refresh_from_db()
    assert alert.state == "resolved" and "vu" in alert.note


def test_alert_pages_show_the_care_teams_alerts_only(
    device: Any,
    message: Make,
    rule: ThresholdRule,
    clinician: User,
    outsider: User,
    patient: User,
    django_assert_max_num_queries: Any,
) -> None:
    from tests.conftest import verified_client

    send(message, 175)
    alert = Alert.objects.get()
    mine, stranger = verified_client(clinician), verified_client(outsider)

    page = mine.get(f"/clinic/alerts/{alert.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    listing = mine.get("/clinic/alerts/")

    assert page.status_code == listing.status_code == 200
    assert f"/clinic/alerts/{alert.pk}/" in listing.content.decode()
    assert stranger.get(f"/clinic/alerts/{alert.pk}/").status_code == 404
    assert f"/clinic/alerts/{alert.pk}/" not in stranger.get("/clinic/alerts/").content.decode()
    assert verified_client(patient).get("/clinic/alerts/").status_code == 404
    for _i in range(5):
        send(message, 140, 190, start=30)  # more alerts: the list stays a bounded page
    with django_assert_max_num_queries(25):
        assert mine.get("/clinic/alerts/?state=all").status_code == 200


def test_fire_clear_fire_in_one_batch_leaves_the_alert_firing(
    device: Any, message: Make, rule: ThresholdRule
) -> None:
    backlog = [message(bp(v), ts=ago(minutes=20 - i)) for i, v in enumerate([172, 140, 181])]

    ingest(backlog)

    alert = Alert.objects.get()
    assert (alert.value, alert.cleared_at, alert.state) == (Decimal(181), None, "open")
    rule.refresh_from_db()
    assert rule.firing is True
    assert AuditEvent.objects.filter(object_type="devices.alert", action="create").count() == 2


def test_fire_then_clear_in_one_batch_marks_the_alert_back_to_normal(
    device: Any, message: Make, rule: ThresholdRule
) -> None:
    ingest([message(bp(v), ts=ago(minutes=20 - i)) for i, v in enumerate([172, 140])])

    alert = Alert.objects.get()
    assert alert.cleared_at is not None and alert.state == "open"
