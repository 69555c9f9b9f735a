"""E-prescriptions: safety warnings, who may sign, PDF, public verification, renew, access."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from pypdf import PdfReader

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.notifications.models import Notification
from apps.records.access import get_patient_for_user
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    DrugInteraction,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services import RecordError
from apps.records.services.care_team import (
    current_members,
    default_team,
    do_add_member,
    do_remove_member,
)
from apps.records.services.prescriptions import (
    PrescriptionWarnings,
    check_prescription,
    do_cancel_prescription,
    do_renew_prescription,
    do_sign_prescription,
)
from apps.records.views.prescriptions import VERIFY_MISS_LIMIT
from tests.conftest import signed_in_client, verified_client

NUMBER_RE = re.compile(r"^RX-\d{4}-\d{6,}$")


def _item(medication: Medication, **overrides: Any) -> dict[str, Any]:
    item = {
        "medication": medication,
        "dose": "1 cp",
        "route": "oral",
        "frequency": 3,
        "as_needed": False,
        "duration_days": 7,
        "quantity": 2,
        "instructions": "Pendant les repas",
    }
    item.update(overrides)
    return item


def _sign(
    patient: Patient, doctor: User, items: list[dict[str, Any]], **kwargs: Any
) -> Prescription:
    access = get_patient_for_user(doctor, patient.pk, action=None)
    return do_sign_prescription(access, doctor, items, **kwargs)


def _line(prefix: int, medication: Medication, **overrides: Any) -> dict[str, str]:
    values = {
        "medication": str(medication.pk),
        "dose": "1 cp",
        "route": "oral",
        "frequency": "3",
        "duration_days": "7",
        "quantity": "1",
        "instructions": "",
    }
    values.update(overrides)
    return {f"items-{prefix}-{key}": value for key, value in values.items()}


def _form_data(*lines: dict[str, str], total: int = 3, **extra: str) -> dict[str, str]:
    data = {
        "items-TOTAL_FORMS": str(total),
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "1",
        "items-MAX_NUM_FORMS": "20",
        "valid_days": "90",
    }
    for line in lines:
        data.update(line)
    data.update(extra)
    return data


@pytest.fixture
def amoxicillin(medication: Callable[..., Medication]) -> Medication:
    return medication("Amoxicilline 500 mg", "J01CA04")


@pytest.fixture
def paracetamol(medication: Callable[..., Medication]) -> Medication:
    return medication("Paracétamol 500 mg", "N02BE01")


@pytest.fixture
def penicillin_allergy(record: Patient, concept: Callable[..., Concept]) -> AllergyIntolerance:
    substance = concept(
        "764146007",
        CodeSystem.SNOMED,
        display="Penicillin",
        category="allergen",
        unit="",
        atc_prefix="J01C",
    )
    return AllergyIntolerance.objects.create(
        patient=record, substance=substance, category="medication", criticality="high"
    )


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


# ---------------------------------------------------------------------------------------------
# Signing and warnings


def test_signing_without_warnings_creates_everything(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        rx = _sign(record, clinician, [_item(paracetamol)])
    # then
    assert rx.status == "active" and NUMBER_RE.match(rx.number)
    assert len(rx.verification_token) >= 32 and rx.signed_at is not None
    assert rx.warnings == [] and rx.override_reason == ""
    assert MedicationRequest.objects.get(prescription=rx).medication == paracetamol
    statement = MedicationStatement.objects.get(prescription=rx)
    assert statement.status == "active" and statement.patient == record
    event = AuditEvent.objects.get(action="sign", object_id=str(rx.pk))
    assert event.actor_id == clinician.pk and event.patient_id == str(record.pk)
    notification = Notification.objects.get(user=record.user)
    assert notification.kind == "record"
    assert "Paracétamol" not in notification.title + notification.body
    assert notification.link == reverse("records:prescription", args=[rx.pk])


def test_allergy_blocks_signing_without_a_reason_and_passes_with_one(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    penicillin_allergy: AllergyIntolerance,
) -> None:
    with pytest.raises(PrescriptionWarnings) as stop:
        _sign(record, clinician, [_item(amoxicillin)])
    (warning,) = stop.value.warnings
    assert warning.kind == "allergy" and warning.severity == "contraindicated"
    assert "J01C" in warning.codes and "J01CA04" in warning.codes
    assert not Prescription.objects.exists()
    # a blank reason is no reason
    with pytest.raises(PrescriptionWarnings):
        _sign(record, clinician, [_item(amoxicillin)], override_reason="   ")
    rx = _sign(
        record, clinician, [_item(amoxicillin)], override_reason="Désensibilisation faite en 2024"
    )
    assert rx.status == "active"
    assert rx.override_reason == "Désensibilisation faite en 2024"
    assert rx.warnings[0]["kind"] == "allergy" and "J01C" in rx.warnings[0]["codes"]


def test_the_form_shows_the_warnings_and_asks_for_a_reason(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    penicillin_allergy: AllergyIntolerance,
) -> None:
    client = verified_client(clinician)
    url = reverse("records:prescription_new", args=[record.pk])
    assert client.get(url).status_code == 200
    # when: no reason
    response = client.post(url, _form_data(_line(0, amoxicillin)))
    # then
    assert response.status_code == 400
    page = response.content.decode()
    assert "warning-box" in page and "J01C" in page and 'name="override_reason"' in page
    acknowledged = response.context["form"]["acknowledged"].value()
    assert acknowledged and not Prescription.objects.exists()
    # when: a reason, for the warnings that were shown
    data = _form_data(
        _line(0, amoxicillin), override_reason="Tolérance documentée", acknowledged=acknowledged
    )
    response = client.post(url, data)
    # then
    rx = Prescription.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("records:prescription", args=[rx.pk])
    assert rx.override_reason == "Tolérance documentée"


def test_a_reason_typed_before_seeing_the_warnings_does_not_count(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    penicillin_allergy: AllergyIntolerance,
) -> None:
    url = reverse("records:prescription_new", args=[record.pk])
    data = _form_data(_line(0, amoxicillin), override_reason="au cas où", acknowledged="")
    response = verified_client(clinician).post(url, data)
    assert response.status_code == 400 and "warning-box" in response.content.decode()
    assert not Prescription.objects.exists()


def test_interaction_with_a_current_medication(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    medication: Callable[..., Medication],
) -> None:
    warfarin = medication("Warfarine 5 mg", "B01AA03")
    ibuprofen = medication("Ibuprofène 400 mg", "M01AE01")
    DrugInteraction.objects.create(
        atc_a="M01A", atc_b="B01AA", severity="major", description="Bleeding risk"
    )
    MedicationStatement.objects.create(patient=record, medication=warfarin, status="active")
    MedicationStatement.objects.create(patient=record, medication=ibuprofen, status="stopped")
    # when
    warnings = check_prescription(record, [_item(ibuprofen)])
    # then
    (warning,) = warnings
    assert warning.kind == "interaction" and warning.severity == "major"
    assert set(warning.codes) == {"M01AE01", "B01AA03"}
    assert "Warfarine" in warning.message and "Bleeding risk" in warning.message
    with pytest.raises(PrescriptionWarnings):
        _sign(record, clinician, [_item(ibuprofen)])
    # a stopped medication does not interact
    MedicationStatement.objects.filter(medication=warfarin).update(status="stopped")
    assert check_prescription(record, [_item(ibuprofen)]) == []


def test_interaction_between_two_new_items(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    medication: Callable[..., Medication],
) -> None:
    clarithromycin = medication("Clarithromycine 500 mg", "J01FA09")
    simvastatin = medication("Simvastatine 40 mg", "C10AA01")
    DrugInteraction.objects.create(
        atc_a="C10AA01", atc_b="J01FA", severity="contraindicated", description="Myopathy"
    )
    items = [_item(clarithromycin), _item(simvastatin)]
    (warning,) = check_prescription(record, items)
    assert warning.kind == "interaction" and warning.severity == "contraindicated"
    with pytest.raises(PrescriptionWarnings):
        _sign(record, clinician, items)
    rx = _sign(record, clinician, items, override_reason="Statine suspendue pendant 7 jours")
    assert rx.items.count() == 2 and rx.warnings[0]["kind"] == "interaction"


def test_checks_use_a_constant_number_of_queries(
    record: Patient, medication: Callable[..., Medication]
) -> None:
    def count(n: int) -> int:
        items = [_item(medication(f"Produit {i}", f"A0{i % 10}AA0{i % 10}")) for i in range(n)]
        for item in items[: n // 2]:
            MedicationStatement.objects.create(patient=record, medication=item["medication"])
        with CaptureQueriesContext(connection) as queries:
            check_prescription(record, items)
        return len(queries)

    assert count(2) == count(12) == 3


def test_a_nurse_cannot_sign(
    record: Patient,
    make_user: Callable[..., User],
    clinician: User,
    paracetamol: Medication,
) -> None:
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    do_add_member(default_team(record), nurse)
    Practitioner.objects.create(user=nurse, registration_number="7601000999999")
    # The nurse reaches the form (care team) but signing is refused with a form error.
    url = reverse("records:prescription_new", args=[record.pk])
    response = verified_client(nurse).post(url, _form_data(_line(0, paracetamol)))
    assert response.status_code == 400
    assert response.context["form"].non_field_errors()
    assert not Prescription.objects.exists()
    with pytest.raises(RecordError):
        _sign(record, nurse, [_item(paracetamol)])


def test_a_physician_without_registration_cannot_sign(
    record: Patient, clinician: User, paracetamol: Medication
) -> None:
    with translation.override("en"), pytest.raises(RecordError, match="registration"):
        _sign(record, clinician, [_item(paracetamol)])
    assert not Prescription.objects.exists()


def test_a_prescription_needs_at_least_one_item(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    with pytest.raises(RecordError):
        _sign(record, clinician, [])
    url = reverse("records:prescription_new", args=[record.pk])
    response = verified_client(clinician).post(url, _form_data())
    assert response.status_code == 400 and not Prescription.objects.exists()


def test_numbers_are_unique(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    numbers = [_sign(record, clinician, [_item(paracetamol)]).number for _ in range(5)]
    assert len(set(numbers)) == 5 and all(NUMBER_RE.match(n) for n in numbers)
    tokens = set(Prescription.objects.values_list("verification_token", flat=True))
    assert len(tokens) == 5


@pytest.mark.django_db(transaction=True)
def test_numbers_are_unique_when_signed_at_the_same_time(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def sign(_n: int) -> str:
        try:
            return _sign(record, clinician, [_item(paracetamol)]).number
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        numbers = list(pool.map(sign, range(8)))
    assert len(set(numbers)) == 8 and all(NUMBER_RE.match(n) for n in numbers)


# ---------------------------------------------------------------------------------------------
# PDF and public verification


def _pdf_text(response: Any) -> str:
    """The PDF's words, with table cells' line breaks folded into single spaces."""
    pages = PdfReader(io.BytesIO(response.content)).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


def test_pdf_contains_what_a_pharmacy_needs(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    paracetamol: Medication,
) -> None:
    rx = _sign(record, clinician, [_item(amoxicillin), _item(paracetamol, as_needed=True)])
    response = verified_client(clinician).get(reverse("records:prescription_pdf", args=[rx.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment")
    text = _pdf_text(response)
    for expected in [
        clinician.get_full_name(),
        practitioner.registration_number,
        record.full_name,
        record.birth_date.strftime("%d.%m.%Y"),
        record.ahv_number,
        rx.number,
        "Amoxicilline 500 mg",
        "Paracétamol 500 mg",
        "7601000000099",  # the hospital's GLN
    ]:
        assert expected in text, expected


def test_verification_says_valid_then_cancelled(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    Patient.objects.filter(pk=record.pk).update(family_name="Dubois-Verdier", given_names="Élodie")
    rx = _sign(record, clinician, [_item(paracetamol)])
    url = reverse("records:prescription_verify", args=[rx.verification_token])
    public = Client()
    # when
    response = public.get(url)
    # then
    page = response.content.decode()
    assert response.status_code == 200 and 'rx-status rx-valid"' in page
    assert rx.number in page and practitioner.registration_number in page
    assert "Paracétamol 500 mg" in page
    assert "Dubois" not in page and "Élodie" not in page and "É. D. V." in page
    assert "1 cp" not in page  # doses stay on the paper
    assert response["Cache-Control"] == "no-store"
    event = _last_event()
    assert event.action == "read" and event.actor_id is None
    assert event.object_id == str(rx.pk) and event.detail == {"public_verify": True}
    # when cancelled
    do_cancel_prescription(rx, clinician, "Erreur de patient")
    response = public.get(url)
    assert response.status_code == 200 and 'rx-status rx-cancelled"' in response.content.decode()
    # the PDF says so too
    pdf = verified_client(clinician).get(reverse("records:prescription_pdf", args=[rx.pk]))
    assert "CANCELLED" in _pdf_text(pdf).upper() or "ANNUL" in _pdf_text(pdf).upper()


def test_verification_of_a_signed_in_user_is_still_anonymous_in_the_audit(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    url = reverse("records:prescription_verify", args=[rx.verification_token])
    assert record.user is not None
    assert signed_in_client(record.user).get(url).status_code == 200
    assert _last_event().actor_id is None


def test_a_random_token_is_not_found(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    public = Client()
    malformed = public.get(reverse("records:prescription_verify", args=["x"]))
    wrong = public.get(reverse("records:prescription_verify", args=["A" * 32]))
    near = public.get(
        reverse("records:prescription_verify", args=[rx.verification_token[:-1] + "!"])
    )
    assert malformed.status_code == wrong.status_code == near.status_code == 404
    # the same page whatever was wrong
    pages = [_main(r.content.decode()) for r in (malformed, wrong, near)]
    assert pages[0] == pages[1] == pages[2] and rx.number not in pages[0]


def _main(page: str) -> str:
    return page[page.index("<main") : page.index("</main>")]


def test_guessing_tokens_is_rate_limited(record: Patient) -> None:
    public = Client()
    url = reverse("records:prescription_verify", args=["B" * 32])
    for _ in range(VERIFY_MISS_LIMIT):
        assert public.get(url).status_code == 404
    assert public.get(url).status_code == 429


def test_expired_prescription_shows_expired(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)], valid_days=1)
    Prescription.objects.filter(pk=rx.pk).update(valid_until="2000-01-01")
    url = reverse("records:prescription_verify", args=[rx.verification_token])
    assert 'rx-status rx-expired"' in Client().get(url).content.decode()


# ---------------------------------------------------------------------------------------------
# Cancel and renew


def test_cancel_needs_a_reason_and_stops_the_medications(
    record: Patient, clinician: User, practitioner: Practitioner, paracetamol: Medication
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    client = verified_client(clinician)
    url = reverse("records:prescription_cancel", args=[rx.pk])
    assert client.post(url, {"reason": ""}).status_code == 302
    rx.refresh_from_db()
    assert rx.status == "active"
    response = client.post(url, {"reason": "Mauvais dosage"})
    assert response.status_code == 302
    rx.refresh_from_db()
    assert rx.status == "cancelled" and rx.cancel_reason == "Mauvais dosage"
    assert rx.cancelled_at is not None
    assert MedicationStatement.objects.get(prescription=rx).status == "stopped"
    event = _last_event()
    assert event.action == "update" and event.object_id == str(rx.pk)


def test_another_physician_of_the_team_may_cancel_a_nurse_may_not(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_user: Callable[..., User],
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    colleague = make_user(Role.PHYSICIAN, organization=clinician.organization)
    for user in (nurse, colleague):
        do_add_member(default_team(record), user)
    with pytest.raises(RecordError):
        do_cancel_prescription(rx, nurse, "Non")
    do_cancel_prescription(rx, colleague, "Doublon")
    rx.refresh_from_db()
    assert rx.status == "cancelled"


def test_renew_creates_a_new_prescription_and_completes_the_old(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    amoxicillin: Medication,
) -> None:
    old = _sign(record, clinician, [_item(paracetamol), _item(amoxicillin, quantity=3)])
    response = verified_client(clinician).post(reverse("records:prescription_renew", args=[old.pk]))
    new = Prescription.objects.exclude(pk=old.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("records:prescription", args=[new.pk])
    old.refresh_from_db()
    assert old.status == "completed" and new.status == "active"
    assert new.renewed_from == old and new.number != old.number
    assert sorted(new.items.values_list("medication__name", "quantity")) == [
        ("Amoxicilline 500 mg", 3),
        ("Paracétamol 500 mg", 2),
    ]
    current = MedicationStatement.objects.filter(patient=record, status="active")
    assert {s.prescription_id for s in current} == {new.pk}
    # a completed prescription is not renewed twice
    with pytest.raises(RecordError):
        do_renew_prescription(old, clinician)


def test_renew_checks_the_warnings_again(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    concept: Callable[..., Concept],
) -> None:
    old = _sign(record, clinician, [_item(amoxicillin)])
    # an allergy recorded since
    substance = concept("91936005", CodeSystem.SNOMED, display="Penicillin", atc_prefix="J01C")
    AllergyIntolerance.objects.create(patient=record, substance=substance, category="medication")
    client = verified_client(clinician)
    url = reverse("records:prescription_renew", args=[old.pk])
    response = client.post(url)
    assert response.status_code == 400 and "warning-box" in response.content.decode()
    old.refresh_from_db()
    assert old.status == "active" and Prescription.objects.count() == 1
    acknowledged = response.context["renew_form"]["acknowledged"].value()
    response = client.post(
        url, {"override_reason": "Test cutané négatif", "acknowledged": acknowledged}
    )
    assert response.status_code == 302
    new = Prescription.objects.get(renewed_from=old)
    assert new.override_reason == "Test cutané négatif" and new.warnings


# ---------------------------------------------------------------------------------------------
# Who sees what


def test_patient_sees_and_downloads_their_own_prescription(
    record: Patient,
    patient: User,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    client = signed_in_client(patient)
    listing = client.get(reverse("records:my_prescriptions"))
    assert listing.status_code == 200 and rx.number in listing.content.decode()
    detail = client.get(reverse("records:prescription", args=[rx.pk]))
    assert detail.status_code == 200 and "Paracétamol 500 mg" in detail.content.decode()
    assert 'action="' + reverse("records:prescription_cancel", args=[rx.pk]) not in (
        detail.content.decode()
    )
    # when
    response = client.get(reverse("records:prescription_pdf", args=[rx.pk]))
    # then
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    event = _last_event()
    assert event.action == "read" and event.actor_id == patient.pk
    assert event.object_id == str(rx.pk) and event.patient_id == str(record.pk)


def test_patient_cannot_cancel_their_own_prescription(
    record: Patient,
    patient: User,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    response = signed_in_client(patient).post(
        reverse("records:prescription_cancel", args=[rx.pk]), {"reason": "Je ne veux pas"}
    )
    assert response.status_code == 404 and _last_event().action == "denied"
    rx.refresh_from_db()
    assert rx.status == "active"


def test_patient_uses_the_portal_address_not_the_clinic_one(record: Patient, patient: User) -> None:
    response = signed_in_client(patient).get(reverse("records:prescriptions", args=[record.pk]))
    assert response.status_code == 404 and _last_event().action == "denied"


@pytest.mark.parametrize("endpoint", ["detail", "pdf", "list", "cancel", "renew"])
@pytest.mark.parametrize("who", ["patient2", "outsider", "removed", "billing"])
def test_anyone_else_gets_404_and_a_denial_row(
    endpoint: str,
    who: str,
    record: Patient,
    record2: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    patient2: User,
    outsider: User,
    billing_user: User,
    make_user: Callable[..., User],
) -> None:
    rx = _sign(record, clinician, [_item(paracetamol)])
    if who == "removed":
        doctor = make_user(Role.PHYSICIAN, organization=clinician.organization)
        do_add_member(default_team(record), doctor)
        member = next(m for m in current_members(record) if m.user_id == doctor.pk)
        do_remove_member(member)
        client = verified_client(doctor)
    elif who == "patient2":
        client = signed_in_client(patient2)
    else:
        client = verified_client({"outsider": outsider, "billing": billing_user}[who])
    before = AuditEvent.objects.count()
    # when
    if endpoint == "list":
        response = client.get(reverse("records:prescriptions", args=[record.pk]))
    elif endpoint in ("cancel", "renew"):
        url = reverse(f"records:prescription_{endpoint}", args=[rx.pk])
        response = client.post(url, {"reason": "x"})
    else:
        name = "records:prescription_pdf" if endpoint == "pdf" else "records:prescription"
        response = client.get(reverse(name, args=[rx.pk]))
    # then
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before + 1
    event = _last_event()
    assert event.action == "denied" and event.outcome == "denied"
    rx.refresh_from_db()
    assert rx.status == "active"
    assert "Paracétamol" not in response.content.decode()


def test_list_uses_a_constant_number_of_queries(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    medication: Callable[..., Medication],
) -> None:
    client = verified_client(clinician)
    url = reverse("records:prescriptions", args=[record.pk])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    _sign(record, clinician, [_item(medication("A", "A01AA01"))])
    count()  # the first request of a session writes the session
    few = count()
    for n in range(4):
        _sign(record, clinician, [_item(medication(f"B{n}", "A02AA01")), _item(medication("C"))])
    assert count() == few
