"""The device pages: a patient's devices, the clinic-wide registry, and the patient's own list."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
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
from apps.devices.models import DeadLetter, Device
from apps.devices.protocol import encode_reading
from apps.devices.services import DeviceError
from apps.devices.services.ingest import RawMessage, ingest
from apps.devices.services.registry import do_register_device, do_retire_device
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import signed_in_client as _signed_in_client
from tests.conftest import verified_client as _verified_client

from .conftest import BP


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """The assertions below read the English texts (the default language is French)."""
    with translation.override("en"):
        yield


@pytest.fixture
def nurse(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    """A nurse on `record`'s care team (only that one)."""
    user = make_user(Role.NURSE, email="nurse@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


def verified_client(user: User) -> Client:
    """Signed in with both factors, in English (the pages' language is the person's choice)."""
    client = _verified_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def signed_in_client(user: User) -> Client:
    client = _signed_in_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _page_url(patient: Patient) -> str:
    return reverse("devices:patient_devices", args=[patient.pk])


def _retire_url(device: Device) -> str:
    return reverse("devices:retire_device", args=[device.patient_id, device.pk])


def _send(device: Device, secret: str, **kwargs: Any) -> None:
    topic, payload = encode_reading(device.device_id, secret, kwargs.pop("obs", BP), **kwargs)
    ingest([RawMessage(payload=payload, transport="mqtt", topic=topic)])


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


def _register_form(client: Client, patient: Patient) -> dict[str, str]:
    """The form's fields as the page serves them (with its one-time nonce)."""
    page = client.get(_page_url(patient)).content.decode()
    match = re.search(r'name="nonce" value="([^"]+)"', page)
    assert match is not None
    return {"nonce": match.group(1), "kind": "glucometer", "manufacturer": "Roche", "serial": "G-7"}


def _count_queries(client: Client, url: str) -> int:
    client.get(url)  # the first request of a session does extra work (session, second factor)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


# --- the patient's devices (clinic) -----------------------------------------------------------


def test_nurse_sees_last_reading_battery_and_last_seen(
    reference: None, record: Patient, nurse: User
) -> None:
    # given a monitor that just sent a reading with a low battery
    device, secret = do_register_device("blood_pressure", record, None, model="M3")
    _send(device, secret, battery=15)
    # when
    response = verified_client(nurse).get(_page_url(record))
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert record.full_name in page  # the patient banner of the chart
    assert device.device_id in page and "M3" in page
    assert "128 mm[Hg]" in page and "82 mm[Hg]" in page
    assert "15 %" in page and "Low battery" in page
    assert "Silent" not in page
    assert re.search(r"<time datetime=\"[^\"]+\" title=\"[^\"]+\">0\xa0minutes? ago</time>", page)
    assert secret not in page
    event = _last_event()
    assert (event.action, event.actor_id, event.patient_id) == ("read", nurse.pk, str(record.pk))
    assert event.detail["what"] == "devices"


def test_a_device_silent_for_a_day_is_flagged(
    reference: None, record: Patient, clinician: User
) -> None:
    device, _ = do_register_device("scale", record, None)
    Device.objects.filter(pk=device.pk).update(
        last_seen_at=timezone.now() - dt.timedelta(hours=25), battery=80
    )
    page = verified_client(clinician).get(_page_url(record)).content.decode()
    assert "Silent" in page and "Low battery" not in page
    assert re.search(r">1\xa0day, 1\xa0hour ago</time>", page)
    assert "No reading yet" in page


def test_registering_shows_the_secret_once_and_never_again(
    reference: None, record: Patient, nurse: User
) -> None:
    client = verified_client(nurse)
    # when
    response = client.post(_page_url(record), _register_form(client, record))
    # then the secret is in this response, which no cache may keep
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    device = Device.objects.get(patient=record)
    assert (device.kind, device.manufacturer, device.serial) == ("glucometer", "Roche", "G-7")
    assert device.registered_by == nurse
    page = response.content.decode()
    assert device.secret in page
    assert device.device_id in page and device.topic in page
    assert "http://testserver/api/v1/devices/ingest" in page
    assert "shown only this once" in page
    # and nowhere else: not in the session, not on the next visit
    assert not any(device.secret in str(v) for v in client.session.values())
    assert device.secret not in client.get(_page_url(record)).content.decode()
    event = AuditEvent.objects.get(object_id=device.device_id)
    assert (event.action, event.actor_id, event.patient_id) == ("create", nurse.pk, str(record.pk))


def test_the_secret_shown_signs_accepted_messages(
    reference: None, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    page = client.post(_page_url(record), _register_form(client, record)).content.decode()
    match = re.search(r"<code data-device-secret>([^<]+)</code>", page)
    assert match is not None
    device = Device.objects.get(patient=record)
    _send(device, match.group(1), obs=[("15074-8", 5.4, "mmol/L")])
    device.refresh_from_db()
    assert device.last_reading_at is not None


def test_sending_the_same_form_twice_registers_one_device(
    reference: None, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    form = _register_form(client, record)
    assert client.post(_page_url(record), form).status_code == 200
    response = client.post(_page_url(record), form)
    assert response.status_code == 400
    assert "already sent" in response.content.decode()
    assert Device.objects.filter(patient=record).count() == 1


def test_invalid_form_is_refused_with_field_errors(
    reference: None, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    form = _register_form(client, record) | {"kind": "toaster"}
    response = client.post(_page_url(record), form)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert not Device.objects.exists()


def test_a_refusal_of_the_registry_is_a_form_error_and_the_form_can_be_sent_again(
    reference: None, record: Patient, clinician: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = verified_client(clinician)
    form = _register_form(client, record)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise DeviceError("You are not on this patient's care team.")

    # The page cannot reach this refusal by itself (its own gate comes first): force it.
    monkeypatch.setattr("apps.devices.views.registry.do_register_device", refuse)
    response = client.post(_page_url(record), form)
    assert response.status_code == 400
    assert "not on this patient&#x27;s care team" in response.content.decode()
    monkeypatch.undo()
    assert client.post(_page_url(record), form).status_code == 200
    assert Device.objects.filter(patient=record).count() == 1


def test_retire_stops_the_device(reference: None, record: Patient, nurse: User) -> None:
    device, secret = do_register_device("thermometer", record, None)
    client = verified_client(nurse)
    assert 'action="' + _retire_url(device) + '"' in client.get(_page_url(record)).content.decode()
    # when
    response = client.post(_retire_url(device))
    # then
    assert response.status_code == 302 and response["Location"] == _page_url(record)
    device.refresh_from_db()
    assert device.status == Device.Status.RETIRED and device.retired_by == nurse
    event = AuditEvent.objects.get(object_id=device.device_id, action="update")
    assert event.detail["change"] == "retire" and event.actor_id == nurse.pk
    page = client.get(_page_url(record)).content.decode()
    assert "is retired" in page and _retire_url(device) not in page
    _send(device, secret, obs=[("8310-5", 37.2, "Cel")])
    assert DeadLetter.objects.get(device=device).reason == "retired_device"


def test_retiring_a_retired_device_is_an_error_on_the_page(
    reference: None, record: Patient, clinician: User
) -> None:
    device, _ = do_register_device("scale", record, None)
    do_retire_device(device, None)
    response = verified_client(clinician).post(_retire_url(device))
    assert response.status_code == 400
    assert "already retired" in response.content.decode()


def test_retire_needs_a_post(reference: None, record: Patient, clinician: User) -> None:
    device, _ = do_register_device("scale", record, None)
    assert verified_client(clinician).get(_retire_url(device)).status_code == 405
    device.refresh_from_db()
    assert device.status == Device.Status.ACTIVE


def test_retiring_another_patients_device_through_this_patient_is_404(
    reference: None, record: Patient, record2: Patient, nurse: User, clinician: User
) -> None:
    # the nurse may manage `record` only; the device belongs to `record2`
    device, _ = do_register_device("scale", record2, None)
    for user, pid in [(nurse, record.pk), (nurse, record2.pk), (clinician, record.pk)]:
        url = reverse("devices:retire_device", args=[pid, device.pk])
        assert verified_client(user).post(url).status_code == 404
        event = _last_event()
        assert (event.action, event.outcome, event.actor_id) == ("denied", "denied", user.pk)
    device.refresh_from_db()
    assert device.status == Device.Status.ACTIVE


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("who", ["outsider", "billing", "admin", "patient", "patient2"])
def test_anyone_else_gets_404_on_the_patient_page_and_is_audited(
    method: str,
    who: str,
    reference: None,
    record: Patient,
    outsider: User,
    billing_user: User,
    admin_user: User,
    patient: User,
    patient2: User,
) -> None:
    do_register_device("scale", record, None)
    users = {"outsider": outsider, "billing": billing_user, "admin": admin_user}
    if who in users:
        client = verified_client(users[who])
    else:  # a patient, even this one, uses the portal, not the clinic
        client = signed_in_client({"patient": patient, "patient2": patient2}[who])
    before = AuditEvent.objects.count()
    data = {"kind": "scale", "nonce": "x" * 20}
    response = getattr(client, method)(_page_url(record), data)
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before + 1
    event = _last_event()
    assert (event.action, event.outcome) == ("denied", "denied")
    assert Device.objects.filter(patient=record).count() == 1


def test_outsider_cannot_retire(reference: None, record: Patient, outsider: User) -> None:
    device, _ = do_register_device("scale", record, None)
    assert verified_client(outsider).post(_retire_url(device)).status_code == 404
    assert _last_event().action == "denied"
    device.refresh_from_db()
    assert device.status == Device.Status.ACTIVE


def test_patient_page_uses_a_constant_number_of_queries(
    reference: None, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    device, secret = do_register_device("blood_pressure", record, None)
    _send(device, secret, battery=50)
    small = _count_queries(client, _page_url(record))
    for n in range(12):
        other, other_secret = do_register_device("blood_pressure", record, None, serial=f"S{n}")
        _send(other, other_secret, battery=10 + n)
    assert _count_queries(client, _page_url(record)) == small


# --- the clinic-wide registry -----------------------------------------------------------------


@pytest.fixture
def stranger_record(make_patient: Callable[..., Patient]) -> Patient:
    """A patient on nobody's care team above."""
    return make_patient(family_name="Inconnu")


def test_registry_lists_the_devices_of_my_patients_only(
    reference: None,
    record: Patient,
    record2: Patient,
    stranger_record: Patient,
    clinician: User,
    nurse: User,
) -> None:
    mine, _ = do_register_device("scale", record, None)
    theirs, _ = do_register_device("glucometer", record2, None)
    hidden, _ = do_register_device("thermometer", stranger_record, None)
    # the physician is on both teams
    page = verified_client(clinician).get(reverse("devices:registry")).content.decode()
    assert mine.device_id in page and theirs.device_id in page
    assert hidden.device_id not in page and "Inconnu" not in page
    assert _page_url(record) in page and record.family_name in page
    event = _last_event()
    assert (event.action, event.actor_id, event.object_type) == (
        "read",
        clinician.pk,
        "devices.device",
    )
    assert event.detail["patients"] == sorted([record.pk, record2.pk])
    # the nurse only on `record`'s
    page = verified_client(nurse).get(reverse("devices:registry")).content.decode()
    assert mine.device_id in page and theirs.device_id not in page


@pytest.mark.parametrize("who", ["billing", "admin", "patient"])
def test_registry_is_for_clinicians_only(
    who: str,
    reference: None,
    record: Patient,
    billing_user: User,
    admin_user: User,
    patient: User,
) -> None:
    do_register_device("scale", record, None)
    client = (
        signed_in_client(patient)
        if who == "patient"
        else verified_client({"billing": billing_user, "admin": admin_user}[who])
    )
    assert client.get(reverse("devices:registry")).status_code == 404
    event = _last_event()
    assert (event.action, event.outcome) == ("denied", "denied")


def test_outsider_sees_an_empty_registry(reference: None, record: Patient, outsider: User) -> None:
    device, _ = do_register_device("scale", record, None)
    response = verified_client(outsider).get(reverse("devices:registry"))
    assert response.status_code == 200
    assert device.device_id not in response.content.decode()
    assert "No device matches." in response.content.decode()


def test_registry_filters(
    reference: None, record: Patient, record2: Patient, clinician: User
) -> None:
    now = timezone.now()
    fresh, _ = do_register_device("scale", record, None)
    low, _ = do_register_device("scale", record, None)
    silent, _ = do_register_device("glucometer", record2, None)
    never, _ = do_register_device("thermometer", record2, None)
    retired, _ = do_register_device("glucometer", record, None)
    Device.objects.filter(pk=fresh.pk).update(last_seen_at=now, battery=90)
    Device.objects.filter(pk=low.pk).update(last_seen_at=now, battery=19)
    Device.objects.filter(pk=silent.pk).update(last_seen_at=now - dt.timedelta(hours=25))
    Device.objects.filter(pk=never.pk).update(registered_at=now - dt.timedelta(days=2))
    Device.objects.filter(pk=retired.pk).update(last_seen_at=now - dt.timedelta(days=3), battery=5)
    do_retire_device(retired, None)
    client = verified_client(clinician)

    def listed(**query: str) -> set[str]:
        page = client.get(reverse("devices:registry"), query).content.decode()
        every = {fresh, low, silent, never, retired}
        return {d.device_id for d in every if d.device_id in page}

    assert listed() == {d.device_id for d in [fresh, low, silent, never, retired]}
    assert listed(kind="glucometer") == {silent.device_id, retired.device_id}
    assert listed(status="retired") == {retired.device_id}
    assert listed(attention="on") == {low.device_id, silent.device_id, never.device_id}
    assert listed(attention="on", kind="scale") == {low.device_id}


def test_registry_is_paginated_and_keeps_the_filters(
    reference: None, record: Patient, clinician: User
) -> None:
    for n in range(27):
        do_register_device("scale", record, None, serial=f"S-{n:02d}")
    client = verified_client(clinician)
    first = client.get(reverse("devices:registry"), {"kind": "scale"}).content.decode()
    assert first.count('<tr id="device-') == 25
    assert "Page 1 of 2" in first and 'href="?kind=scale&amp;page=2"' in first
    second = client.get(
        reverse("devices:registry"), {"kind": "scale", "page": "2"}
    ).content.decode()
    assert second.count('<tr id="device-') == 2


def test_registry_uses_a_constant_number_of_queries(
    reference: None,
    record: Patient,
    record2: Patient,
    make_patient: Callable[..., Patient],
    clinician: User,
) -> None:
    client = verified_client(clinician)
    url = reverse("devices:registry")
    device, secret = do_register_device("blood_pressure", record, None)
    _send(device, secret, battery=40)
    small = _count_queries(client, url)
    patients = [record, record2]
    for _n in range(3):
        extra = make_patient()
        do_add_member(default_team(extra), clinician)
        patients.append(extra)
    for n in range(30):
        other, other_secret = do_register_device("blood_pressure", patients[n % 5], None)
        _send(other, other_secret, battery=n)
    assert _count_queries(client, url) == small
    assert _count_queries(client, url + "?attention=on&page=2") == small


# --- the patient's own devices (portal) -------------------------------------------------------


def test_patient_sees_own_devices_in_use_without_secret_or_form(
    reference: None, record: Patient, record2: Patient, patient: User
) -> None:
    device, secret = do_register_device("blood_pressure", record, None, model="M3")
    _send(device, secret, battery=12)
    old, _ = do_register_device("scale", record, None)
    do_retire_device(old, None)
    other, _ = do_register_device("glucometer", record2, None)
    response = signed_in_client(patient).get(reverse("devices:my_devices"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Blood-pressure monitor" in page and "128 mm[Hg]" in page
    assert "12 %" in page and "Low battery" in page
    assert secret not in page and device.device_id not in page
    assert "Scale" not in page and other.device_id not in page and "Glucometer" not in page
    assert '<form method="post" novalidate' not in page and 'name="kind"' not in page
    event = _last_event()
    assert (event.action, event.actor_id, event.patient_id) == ("read", patient.pk, str(record.pk))


@pytest.mark.parametrize("who", ["clinician", "patient_without_record"])
def test_my_devices_is_for_patients_with_a_record(
    who: str, reference: None, record: Patient, clinician: User, patient2: User
) -> None:
    client = verified_client(clinician) if who == "clinician" else signed_in_client(patient2)
    assert client.get(reverse("devices:my_devices")).status_code == 404
    assert _last_event().action == "denied"
