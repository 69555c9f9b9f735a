"""Break-the-glass: reason required, time-limited, audited, notified, visible to the patient."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.notifications.models import Notification
from apps.records.access import check_patient_access
from apps.records.models import BreakGlassAccess, Patient
from apps.records.services import RecordError
from apps.records.services.break_glass import do_break_glass
from tests.conftest import signed_in_client, verified_client


def test_reason_is_mandatory(record: Patient, outsider: User) -> None:
    client = verified_client(outsider)
    response = client.post(reverse("records:break_glass", args=[record.pk]), {"reason": "vite"})
    assert response.status_code == 400
    assert not BreakGlassAccess.objects.exists()
    with pytest.raises(RecordError):
        do_break_glass(outsider, record.pk, "   urgent  ")


def test_lifecycle_from_request_to_expiry(
    record: Patient, outsider: User, clinician: User, patient: User
) -> None:
    client = verified_client(outsider)
    chart = reverse("records:chart", args=[record.pk])
    # given: the outsider is refused
    assert client.get(chart).status_code == 404
    # when: they break the glass with a reason
    response = client.post(
        reverse("records:break_glass", args=[record.pk]),
        {"reason": "Patient inconscient aux urgences, besoin des allergies"},
    )
    # then: they reach the chart, flagged, for four hours
    assert response.status_code == 302 and response["Location"] == chart
    grant = BreakGlassAccess.objects.get()
    assert (
        timedelta(hours=3, minutes=59) < grant.expires_at - grant.started_at <= timedelta(hours=4)
    )
    page = client.get(chart)
    assert page.status_code == 200
    assert "Emergency access" in page.content.decode() or "urgence" in page.content.decode()
    flagged = AuditEvent.objects.get(action="break-glass")
    assert flagged.patient_id == str(record.pk) and "inconscient" in flagged.detail["reason"]
    read = AuditEvent.objects.filter(action="read", actor_id=outsider.pk).last()
    assert read is not None and read.detail["break_glass"] == grant.pk
    # the care team and the patient are told
    assert Notification.objects.filter(user=clinician, kind="record.access").exists()
    assert Notification.objects.filter(user=patient, kind="record.access").exists()
    # the patient sees it in "who accessed my record"
    log = signed_in_client(patient).get(reverse("records:access_log")).content.decode()
    assert outsider.get_full_name() in log and "inconscient" in log
    # when: the time is up, the server refuses again
    BreakGlassAccess.objects.filter(pk=grant.pk).update(
        started_at=timezone.now() - timedelta(hours=5),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    assert check_patient_access(outsider, record.pk) is None
    assert client.get(chart).status_code == 404


def test_break_glass_for_unknown_patient_is_404(outsider: User) -> None:
    client = verified_client(outsider)
    assert client.get(reverse("records:break_glass", args=[999999])).status_code == 404


@pytest.mark.parametrize("who", ["billing_user", "patient2"])
def test_only_clinicians_may_break_the_glass(
    who: str, record: Patient, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    response = client.post(
        reverse("records:break_glass", args=[record.pk]), {"reason": "Urgence vitale absolue"}
    )
    assert response.status_code == 404
    assert not BreakGlassAccess.objects.exists()


def test_emergency_search_finds_by_ahv_and_is_audited(record: Patient, outsider: User) -> None:
    client = verified_client(outsider)
    response = client.get(reverse("records:emergency_search"), {"ahv_number": record.ahv_number})
    assert record.full_name in response.content.decode()
    assert AuditEvent.objects.filter(detail__what="emergency-search").exists()


def test_break_glass_report_in_admin(record: Patient, outsider: User, admin_user: User) -> None:
    do_break_glass(outsider, record.pk, "Arrêt cardiaque en salle d'attente")
    response = verified_client(admin_user).get(reverse("admin:records_breakglassaccess_changelist"))
    assert response.status_code == 200
    assert "cardiaque" in response.content.decode()
