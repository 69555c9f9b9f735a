"""Demo records: realistic synthetic charts for the demo patients (seed_demo; idempotent)."""

from __future__ import annotations

import datetime as dt
import io
import random
from decimal import Decimal
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.accounts.models import User

from .access import get_patient_for_user
from .models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Condition,
    DiagnosticReport,
    Encounter,
    Medication,
    MedicationStatement,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
    PractitionerRole,
    interpret,
)
from .reference import load_reference_data
from .services.care_team import default_team, do_add_member
from .services.clinical import do_write_note

LOINC = CodeSystem.LOINC
ICD10 = CodeSystem.ICD10
SNOMED = CodeSystem.SNOMED

# (ahv, family, given, birth date, sex, city, portal handle, problems (ICD-10), allergy (SNOMED))
PATIENTS = [
    (
        "756.9217.0769.85",
        "Dubois",
        "Marie",
        "1958-04-12",
        "female",
        "Lausanne",
        "patient",
        ["I10", "E11.9", "E78.5"],
        ["764146007"],
    ),
    (
        "756.3047.5009.62",
        "Bernasconi",
        "Luca",
        "1971-09-30",
        "male",
        "Lugano",
        "patient2",
        ["J44.9", "I48.9"],
        [],
    ),
    (
        "756.5588.2213.41",
        "Rochat",
        "Élise",
        "1949-01-03",
        "female",
        "Vevey",
        None,
        ["I50.9", "N18.3"],
        [],
    ),
    (
        "756.1209.8876.03",
        "Keller",
        "Jonas",
        "1983-06-21",
        "male",
        "Fribourg",
        None,
        ["J45.9"],
        ["762952008"],
    ),
    (
        "756.7744.1290.58",
        "Favre",
        "Louise",
        "1966-11-08",
        "female",
        "Genève",
        None,
        ["E11.9", "E66.9"],
        [],
    ),
    (
        "756.4410.6672.19",
        "Müller",
        "Hans",
        "1940-02-17",
        "male",
        "Bern",
        None,
        ["I25.9", "I10"],
        [],
    ),
]

# LOINC vital sign: (mean, spread, decimals)
VITALS: dict[str, tuple[float, float, int]] = {
    "8480-6": (138, 9, 0),
    "8462-4": (84, 6, 0),
    "8867-4": (74, 7, 0),
    "29463-7": (78, 1.2, 1),
    "59408-5": (96, 1.2, 0),
}
# Quarterly labs: (mean, spread, decimals)
LABS: dict[str, tuple[float, float, int]] = {
    "4548-4": (7.1, 0.5, 1),
    "14682-9": (88, 10, 0),
    "2823-3": (4.3, 0.3, 1),
}
MEDICATIONS = {"patient": ["A10BA02", "C09AA03", "C10AA05"], "patient2": ["R03BA05", "B01AF02"]}


def seed(context: dict[str, Any]) -> None:
    load_reference_data()
    users: dict[str, User] = context["users"]
    organization = context["organization"]
    physician = users["physician"]
    practitioner, _ = Practitioner.objects.get_or_create(
        user=physician,
        defaults={"registration_number": "7601000234567", "qualification": "FMH Médecine interne"},
    )
    PractitionerRole.objects.get_or_create(
        practitioner=practitioner,
        organization=organization,
        defaults={
            "code": physician.role,
            "specialty_code": "419192003",
            "specialty_display": "Internal medicine",
        },
    )
    rng = random.Random(2026)  # noqa: S311 - synthetic demo data, not security
    for ahv, family, given, born, sex, city, handle, problems, allergies in PATIENTS:
        user = users.get(handle) if handle else None
        patient, _created = Patient.objects.update_or_create(
            ahv_number=ahv,
            defaults={
                "user": user,
                "organization": organization,
                "family_name": family,
                "given_names": given,
                "birth_date": dt.date.fromisoformat(born),
                "sex": sex,
                "city": city,
                "country": "CH",
                "phone": "+41 79 000 00 00",
                "insurer_name": "Assura",
                "insurance_card_number": "80756" + ahv.replace(".", "")[3:] + "00000",
                "preferred_language": "de" if city == "Bern" else "fr",
            },
        )
        team = default_team(patient)
        members = ["physician", "nurse"] + (["physio", "coordinator"] if handle else [])
        for member in members:
            do_add_member(team, users[member], is_lead=member == "physician")
        if Observation.objects.filter(patient=patient).exists():
            continue  # the clinical part is seeded once
        _seed_chart(patient, physician, users["nurse"], problems, allergies, handle, rng)


def _concept(system: str, code: str) -> Concept | None:
    return Concept.objects.filter(system=system, code=code).first()


def _seed_chart(
    patient: Patient,
    physician: User,
    nurse: User,
    problems: list[str],
    allergies: list[str],
    handle: str | None,
    rng: random.Random,
) -> None:
    now = timezone.now()
    year_ago = now - dt.timedelta(days=365)
    for code in problems:
        concept = _concept(ICD10, code)
        if concept:
            Condition.objects.create(
                patient=patient,
                code=concept,
                onset_date=(year_ago - dt.timedelta(days=rng.randint(100, 3000))).date(),
                sensitivity=concept.sensitivity,
                recorded_by=physician,
                recorded_at=year_ago,
            )
    for code in allergies:
        concept = _concept(SNOMED, code)
        if concept:
            AllergyIntolerance.objects.create(
                patient=patient,
                substance=concept,
                category="medication" if concept.atc_prefix else "food",
                criticality="high",
                reaction="Urticaire généralisée",
                recorded_by=physician,
                recorded_at=year_ago,
            )
    for atc in MEDICATIONS.get(handle or "", []):
        medication = Medication.objects.filter(atc_code=atc).first()
        if medication:
            MedicationStatement.objects.create(
                patient=patient,
                medication=medication,
                dosage="1 cp le matin",
                started_on=year_ago.date(),
                recorded_by=physician,
                recorded_at=year_ago,
            )
    # A year of home measurements, every other day, from a connected cuff and scale.
    observations = []
    for code, (mean, spread, decimals) in VITALS.items():
        concept = _concept(LOINC, code)
        if concept is None:
            continue
        for day in range(0, 365, 2):
            value = Decimal(str(round(rng.gauss(mean, spread), decimals)))
            at = year_ago + dt.timedelta(days=day, hours=7, minutes=rng.randint(0, 50))
            observations.append(
                Observation(
                    patient=patient,
                    code=concept,
                    category="vital-signs",
                    value=value,
                    unit=concept.unit,
                    ref_low=concept.low,
                    ref_high=concept.high,
                    effective_at=at,
                    source="device" if day % 6 else "manual",
                    recorded_at=at,
                )
            )
    for observation in observations:  # bulk_create skips Observation.save()
        observation.interpretation = interpret(
            observation.value, observation.ref_low, observation.ref_high
        )
    Observation.objects.bulk_create(observations, batch_size=500)
    # Quarterly lab panels, each a DiagnosticReport with its results.
    panel = _concept(LOINC, "24323-8")
    for quarter in range(4):
        at = year_ago + dt.timedelta(days=45 + 90 * quarter)
        report = None
        if panel:
            report = DiagnosticReport.objects.create(
                patient=patient,
                code=panel,
                category="LAB",
                issued_at=at + dt.timedelta(hours=6),
                performer="Laboratoire du Léman",
                conclusion="Valeurs transmises par le laboratoire.",
                recorded_at=at,
            )
        for code, (mean, spread, decimals) in LABS.items():
            concept = _concept(LOINC, code)
            if concept:
                Observation.objects.create(
                    patient=patient,
                    code=concept,
                    category="laboratory",
                    value=Decimal(str(round(rng.gauss(mean, spread), decimals))),
                    unit=concept.unit,
                    ref_low=concept.low,
                    ref_high=concept.high,
                    effective_at=at,
                    source="lab",
                    report=report,
                    recorded_at=at,
                )
    # Monthly video consultations with a signed note each.
    access = get_patient_for_user(physician, patient.pk, action=None)
    for month in range(0, 12, 2):
        start = year_ago + dt.timedelta(days=30 * month + 10, hours=9)
        Encounter.objects.create(
            patient=patient,
            status="finished",
            kind="VR",
            reason="Suivi des maladies chroniques",
            practitioner=physician,
            started_at=start,
            ended_at=start + dt.timedelta(minutes=20),
            recorded_at=start,
        )
    for text in [
        "Tension bien contrôlée à domicile. Poursuite du traitement.",
        "Patiente en forme, pas de plainte. HbA1c stable.",
        "Téléconsultation : œdèmes discrets des chevilles, à surveiller.",
    ]:
        do_write_note(access, physician, kind="consultation", title="Téléconsultation", text=text)
    last = Observation.objects.filter(patient=patient, interpretation__in=["H", "HH"]).first()
    if last is not None:
        ObservationNote.objects.create(
            observation=last, author=nurse, text="Mesure après effort, à recontrôler au repos."
        )
    _seed_documents(patient, physician, access)
    _seed_prescription(patient, physician, access)


def _seed_documents(patient: Patient, physician: User, access: Any) -> None:
    from PIL import Image

    from .services.documents import do_upload_document

    picture = io.BytesIO()
    Image.new("RGB", (480, 320), (214, 170, 150)).save(picture, "JPEG")
    photo = SimpleUploadedFile("cheville.jpg", picture.getvalue(), content_type="image/jpeg")
    do_upload_document(
        access,
        photo,
        title="Photo de la cheville",
        category="photo",
        sensitivity="normal",
        request=None,
    )
    letter = _demo_pdf(f"Lettre de sortie — {patient.full_name}")
    do_upload_document(
        access,
        SimpleUploadedFile("lettre-de-sortie.pdf", letter, content_type="application/pdf"),
        title="Lettre de sortie",
        category="letter",
        sensitivity="normal",
        request=None,
    )


def _demo_pdf(title: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=f"<h1>{title}</h1><p>Document de démonstration.</p>").write_pdf() or b""


def _seed_prescription(patient: Patient, physician: User, access: Any) -> None:
    from .services.prescriptions import do_sign_prescription

    medication = Medication.objects.filter(atc_code="N02BE01").first()
    if medication is None:
        return
    do_sign_prescription(
        access,
        physician,
        [
            {
                "medication": medication,
                "dose": "1 g",
                "route": "oral",
                "frequency": 3,
                "as_needed": True,
                "duration_days": 10,
                "quantity": 1,
                "instructions": "En cas de douleur, maximum 3 g par jour.",
            }
        ],
        override_reason="",
    )
