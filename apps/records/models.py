"""The patient record. Each model maps one-to-one onto a FHIR R4 resource (`fhir` package)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from apps.accounts.models import Organization
from apps.core.fields import EncryptedTextField

# ---------------------------------------------------------------------------------------------
# Reference data (fixtures/reference/*.json, loaded by `manage.py load_reference_data`)


class CodeSystem(models.TextChoices):
    LOINC = "http://loinc.org", "LOINC"
    ICD10 = "http://hl7.org/fhir/sid/icd-10", "ICD-10"
    SNOMED = "http://snomed.info/sct", "SNOMED CT"
    ATC = "http://www.whocc.no/atc", "ATC"


class Sensitivity(models.TextChoices):
    """Categories only some roles may see (`RECORDS_SENSITIVE_ROLES`)."""

    NORMAL = "normal", _("normal")
    MENTAL_HEALTH = "mental_health", _("mental health")
    SEXUAL_HEALTH = "sexual_health", _("sexual health")
    ADDICTION = "addiction", _("addiction")


class Concept(models.Model):
    """A code from a real code system, with its display in our three languages."""

    system = models.CharField(_("code system"), max_length=100, choices=CodeSystem.choices)
    code = models.CharField(_("code"), max_length=30)
    display = models.CharField(_("display (English)"), max_length=200)
    display_fr = models.CharField(_("display (French)"), max_length=200, blank=True)
    display_de = models.CharField(_("display (German)"), max_length=200, blank=True)
    # Observations: "vital-signs" or "laboratory"; conditions: "problem"; allergies: "allergen".
    category = models.CharField(_("category"), max_length=30, blank=True)
    unit = models.CharField(_("UCUM unit"), max_length=30, blank=True)
    low = models.DecimalField(_("usual low"), max_digits=12, decimal_places=4, null=True)
    high = models.DecimalField(_("usual high"), max_digits=12, decimal_places=4, null=True)
    explanation = models.TextField(_("plain-language explanation (English)"), blank=True)
    explanation_fr = models.TextField(_("plain-language explanation (French)"), blank=True)
    explanation_de = models.TextField(_("plain-language explanation (German)"), blank=True)
    # Allergens that are drugs: the ATC class they cover (e.g. J01C for penicillins).
    atc_prefix = models.CharField(_("ATC class"), max_length=10, blank=True)
    # Conditions recorded with this code inherit its category (e.g. F32 depression).
    sensitivity = models.CharField(
        _("sensitivity"), max_length=20, choices=Sensitivity.choices, default="normal"
    )

    class Meta:
        verbose_name = _("code")
        verbose_name_plural = _("codes")
        ordering = ["system", "code"]
        constraints = [
            models.UniqueConstraint(fields=["system", "code"], name="concept_system_code_unique")
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.code})"

    @property
    def label(self) -> str:
        language = (get_language() or "fr")[:2]
        return getattr(self, f"display_{language}", "") or self.display

    @property
    def plain_explanation(self) -> str:
        language = (get_language() or "fr")[:2]
        return getattr(self, f"explanation_{language}", "") or self.explanation


class Medication(models.Model):
    """A medicinal product of the hospital's list (FHIR Medication, coded with ATC)."""

    atc_code = models.CharField(_("ATC code"), max_length=10, db_index=True)
    name = models.CharField(_("name"), max_length=200, unique=True)
    strength = models.CharField(_("strength"), max_length=60, blank=True)
    form = models.CharField(_("form"), max_length=60, blank=True)

    class Meta:
        verbose_name = _("medication")
        verbose_name_plural = _("medications")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Severity(models.TextChoices):
    MINOR = "minor", _("minor")
    MODERATE = "moderate", _("moderate")
    MAJOR = "major", _("major")
    CONTRAINDICATED = "contraindicated", _("contraindicated")


class DrugInteraction(models.Model):
    """Two ATC classes (prefixes) that interact, in either order."""

    atc_a = models.CharField(_("ATC class A"), max_length=10)
    atc_b = models.CharField(_("ATC class B"), max_length=10)
    severity = models.CharField(_("severity"), max_length=20, choices=Severity.choices)
    description = models.TextField(_("description (English)"))
    description_fr = models.TextField(_("description (French)"), blank=True)
    description_de = models.TextField(_("description (German)"), blank=True)

    class Meta:
        verbose_name = _("drug interaction")
        verbose_name_plural = _("drug interactions")
        constraints = [
            models.UniqueConstraint(fields=["atc_a", "atc_b"], name="interaction_pair_unique")
        ]

    def __str__(self) -> str:
        return f"{self.atc_a} × {self.atc_b} ({self.severity})"

    @property
    def text(self) -> str:
        language = (get_language() or "fr")[:2]
        return getattr(self, f"description_{language}", "") or self.description


# ---------------------------------------------------------------------------------------------
# People


class Sex(models.TextChoices):
    """FHIR AdministrativeGender."""

    FEMALE = "female", _("female")
    MALE = "male", _("male")
    OTHER = "other", _("other")
    UNKNOWN = "unknown", _("unknown")


class Patient(models.Model):
    """FHIR Patient. Access to the clinical record is a guardian object permission."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("portal account"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient_record",
    )
    organization = models.ForeignKey(
        Organization,
        verbose_name=_("managing organisation"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="patients",
    )
    family_name = models.CharField(_("family name"), max_length=100)
    given_names = models.CharField(_("given names"), max_length=150)
    birth_date = models.DateField(_("birth date"))
    sex = models.CharField(_("sex"), max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    ahv_number = models.CharField(
        _("AHV/AVS number"), max_length=16, blank=True, help_text="756.1234.5678.97"
    )
    insurance_card_number = models.CharField(_("insurance card number"), max_length=20, blank=True)
    insurer_name = models.CharField(_("insurer"), max_length=120, blank=True)
    insurer_gln = models.CharField(_("insurer GLN"), max_length=13, blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    email = models.EmailField(_("email"), blank=True)
    address_line = models.CharField(_("address"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=12, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=2, default="CH")
    preferred_language = models.CharField(
        _("preferred language"), max_length=8, choices=settings.LANGUAGES, default="fr"
    )
    contact_name = models.CharField(_("emergency contact"), max_length=150, blank=True)
    contact_relationship = models.CharField(_("relationship"), max_length=60, blank=True)
    contact_phone = models.CharField(_("emergency contact phone"), max_length=30, blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        ordering = ["family_name", "given_names"]
        default_permissions = ()
        permissions = [("access_record", "Can open the clinical record of this patient")]
        constraints = [
            models.UniqueConstraint(
                fields=["ahv_number"], condition=~Q(ahv_number=""), name="patient_ahv_unique"
            )
        ]
        indexes = [models.Index(fields=["family_name", "given_names"])]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.given_names} {self.family_name}"

    def age(self, today: Any = None) -> int:
        today = today or timezone.localdate()
        born = self.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class PatientUserObjectPermission(UserObjectPermissionBase):
    """Guardian's per-user grants on Patient, with a real foreign key (fast joins)."""

    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)


class PatientGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)


class RegistrationSystem(models.TextChoices):
    GLN = "gln", "GLN"
    RPPS = "rpps", "RPPS"
    OTHER = "other", _("other")


class Practitioner(models.Model):
    """FHIR Practitioner: the professional identity of a staff account."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="practitioner"
    )
    registration_system = models.CharField(
        _("register"), max_length=10, choices=RegistrationSystem.choices, default="gln"
    )
    registration_number = models.CharField(_("registration number"), max_length=30)
    qualification = models.CharField(_("qualification"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("practitioner")
        verbose_name_plural = _("practitioners")
        constraints = [
            models.UniqueConstraint(
                fields=["registration_system", "registration_number"],
                name="practitioner_registration_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user.get_full_name()} ({self.registration_number})"


class PractitionerRole(models.Model):
    """FHIR PractitionerRole: what a practitioner does, where."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="roles")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(_("role"), max_length=20)  # accounts.Role value
    specialty_code = models.CharField(_("specialty (SNOMED CT)"), max_length=20, blank=True)
    specialty_display = models.CharField(_("specialty"), max_length=120, blank=True)
    active = models.BooleanField(_("active"), default=True)
    period_start = models.DateField(_("since"), default=timezone.localdate)
    period_end = models.DateField(_("until"), null=True, blank=True)

    class Meta:
        verbose_name = _("practitioner role")
        verbose_name_plural = _("practitioner roles")

    def __str__(self) -> str:
        return f"{self.practitioner} — {self.code} @ {self.organization}"


class CareTeam(models.Model):
    """FHIR CareTeam. Membership is the only way to the clinical record (see `services`)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_teams")
    name = models.CharField(_("name"), max_length=120)
    active = models.BooleanField(_("active"), default=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("care team")
        verbose_name_plural = _("care teams")

    def __str__(self) -> str:
        return f"{self.name} ({self.patient})"


class CareTeamMember(models.Model):
    """FHIR CareTeam.participant. Ended memberships stay, with their end date."""

    care_team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_team_memberships"
    )
    role = models.CharField(_("role"), max_length=20)
    is_lead = models.BooleanField(_("lead"), default=False)
    started_at = models.DateTimeField(_("since"), default=timezone.now)
    ended_at = models.DateTimeField(_("until"), null=True, blank=True)

    class Meta:
        verbose_name = _("care-team member")
        verbose_name_plural = _("care-team members")
        constraints = [
            models.UniqueConstraint(
                fields=["care_team", "user"],
                condition=Q(ended_at__isnull=True),
                name="care_team_member_current_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.care_team}"


class BreakGlassAccess(models.Model):
    """Emergency access by a clinician outside the care team; expiry is enforced on each read."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="break_glass_accesses"
    )
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="break_glass")
    reason = models.TextField(_("reason"))
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    ended_at = models.DateTimeField(_("ended early"), null=True, blank=True)

    class Meta:
        verbose_name = _("emergency access")
        verbose_name_plural = _("emergency accesses")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["user", "patient", "expires_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("started_at")), name="break_glass_expiry_after"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.patient} ({self.started_at:%Y-%m-%d %H:%M})"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None and self.expires_at > timezone.now()


# ---------------------------------------------------------------------------------------------
# Clinical data. Every row belongs to one patient and may carry a sensitive category.


class ClinicalItem(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    sensitivity = models.CharField(
        _("sensitivity"), max_length=20, choices=Sensitivity.choices, default=Sensitivity.NORMAL
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now)

    class Meta:
        abstract = True


class Encounter(ClinicalItem):
    class Status(models.TextChoices):
        PLANNED = "planned", _("planned")
        IN_PROGRESS = "in-progress", _("in progress")
        FINISHED = "finished", _("finished")
        CANCELLED = "cancelled", _("cancelled")

    class Kind(models.TextChoices):
        """v3 ActCode encounter classes."""

        VIRTUAL = "VR", _("video consultation")
        AMBULATORY = "AMB", _("outpatient visit")
        HOME = "HH", _("home visit")
        INPATIENT = "IMP", _("hospital stay")

    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    kind = models.CharField(_("type"), max_length=5, choices=Kind.choices, default=Kind.VIRTUAL)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    started_at = models.DateTimeField(_("start"))
    ended_at = models.DateTimeField(_("end"), null=True, blank=True)

    class Meta:
        verbose_name = _("encounter")
        verbose_name_plural = _("encounters")
        indexes = [models.Index(fields=["patient", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d}"


class Condition(ClinicalItem):
    class ClinicalStatus(models.TextChoices):
        ACTIVE = "active", _("active")
        RECURRENCE = "recurrence", _("recurrence")
        REMISSION = "remission", _("in remission")
        RESOLVED = "resolved", _("resolved")

    code = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="+")
    clinical_status = models.CharField(
        _("status"), max_length=20, choices=ClinicalStatus.choices, default="active"
    )
    verification_status = models.CharField(_("verification"), max_length=20, default="confirmed")
    onset_date = models.DateField(_("onset"), null=True, blank=True)
    abatement_date = models.DateField(_("resolved on"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=300, blank=True)
    encounter = models.ForeignKey(Encounter, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        verbose_name = _("problem")
        verbose_name_plural = _("problems")
        indexes = [models.Index(fields=["patient", "-recorded_at"])]

    def __str__(self) -> str:
        return self.code.label


class AllergyIntolerance(ClinicalItem):
    class Criticality(models.TextChoices):
        LOW = "low", _("low")
        HIGH = "high", _("high")
        UNABLE = "unable-to-assess", _("unable to assess")

    class Category(models.TextChoices):
        MEDICATION = "medication", _("medication")
        FOOD = "food", _("food")
        ENVIRONMENT = "environment", _("environment")
        BIOLOGIC = "biologic", _("biologic")

    substance = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    criticality = models.CharField(
        _("criticality"), max_length=20, choices=Criticality.choices, default="low"
    )
    clinical_status = models.CharField(_("status"), max_length=20, default="active")
    reaction = models.CharField(_("reaction"), max_length=200, blank=True)
    onset_date = models.DateField(_("onset"), null=True, blank=True)

    class Meta:
        verbose_name = _("allergy")
        verbose_name_plural = _("allergies")

    def __str__(self) -> str:
        return self.substance.label


class MedicationStatement(ClinicalItem):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        COMPLETED = "completed", _("completed")
        STOPPED = "stopped", _("stopped")
        ON_HOLD = "on-hold", _("on hold")

    medication = models.ForeignKey(Medication, on_delete=models.PROTECT, related_name="+")
    dosage = models.CharField(_("dosage"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default="active")
    started_on = models.DateField(_("since"), null=True, blank=True)
    ended_on = models.DateField(_("until"), null=True, blank=True)
    prescription = models.ForeignKey(
        "Prescription", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("current medication")
        verbose_name_plural = _("current medications")

    def __str__(self) -> str:
        return f"{self.medication} {self.dosage}"


class Prescription(ClinicalItem):
    """A signed e-prescription: the group of MedicationRequests signed together."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        ACTIVE = "active", _("valid")
        CANCELLED = "cancelled", _("cancelled")
        COMPLETED = "completed", _("completed")

    prescriber = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="prescriptions_written"
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default="draft")
    number = models.CharField(_("number"), max_length=20, unique=True)
    verification_token = models.CharField(max_length=40, unique=True)
    signed_at = models.DateTimeField(_("signed"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    warnings = models.JSONField(_("warnings at signing"), default=list, blank=True)
    override_reason = models.TextField(_("reason for overriding the warnings"), blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=300, blank=True)
    renewed_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="renewals"
    )
    encounter = models.ForeignKey(Encounter, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        verbose_name = _("prescription")
        verbose_name_plural = _("prescriptions")
        indexes = [models.Index(fields=["patient", "-recorded_at"])]

    def __str__(self) -> str:
        return self.number


class Route(models.TextChoices):
    """Routes of administration; `fhir.ROUTE_SNOMED` holds their SNOMED CT codes."""

    ORAL = "oral", _("by mouth")
    SUBLINGUAL = "sublingual", _("under the tongue")
    INHALED = "inhaled", _("inhaled")
    TOPICAL = "topical", _("on the skin")
    SUBCUTANEOUS = "subcutaneous", _("subcutaneous injection")
    INTRAMUSCULAR = "intramuscular", _("intramuscular injection")
    INTRAVENOUS = "intravenous", _("intravenous")
    RECTAL = "rectal", _("rectal")


class MedicationRequest(ClinicalItem):
    """One line of a prescription (FHIR MedicationRequest, grouped by `groupIdentifier`)."""

    prescription = models.ForeignKey(Prescription, on_delete=models.CASCADE, related_name="items")
    medication = models.ForeignKey(Medication, on_delete=models.PROTECT, related_name="+")
    dose = models.CharField(_("dose"), max_length=60)
    route = models.CharField(_("route"), max_length=20, choices=Route.choices, default="oral")
    frequency = models.PositiveSmallIntegerField(_("times per day"))
    as_needed = models.BooleanField(_("as needed"), default=False)
    duration_days = models.PositiveSmallIntegerField(_("duration (days)"))
    quantity = models.PositiveSmallIntegerField(_("quantity (packs)"))
    instructions = models.CharField(_("instructions"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("prescribed medication")
        verbose_name_plural = _("prescribed medications")
        constraints = [
            models.CheckConstraint(condition=Q(frequency__gte=1), name="request_frequency_min"),
            models.CheckConstraint(condition=Q(duration_days__gte=1), name="request_duration_min"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="request_quantity_min"),
        ]

    def __str__(self) -> str:
        return f"{self.medication} {self.dose}"


class Interpretation(models.TextChoices):
    """v3 ObservationInterpretation."""

    NORMAL = "N", _("within the usual range")
    LOW = "L", _("below the usual range")
    HIGH = "H", _("above the usual range")
    CRITICAL_LOW = "LL", _("far below the usual range")
    CRITICAL_HIGH = "HH", _("far above the usual range")


class Source(models.TextChoices):
    MANUAL = "manual", _("entered by a professional")
    DEVICE = "device", _("connected device")
    LAB = "lab", _("laboratory")


def interpret(value: Decimal | None, low: Decimal | None, high: Decimal | None) -> str:
    """H/L outside the range; HH/LL beyond half the range's width again (critical)."""
    if value is None or (low is None and high is None):
        return ""
    margin = (high - low) / 2 if low is not None and high is not None else Decimal(0)
    if low is not None and value < low:
        return Interpretation.CRITICAL_LOW if margin and value < low - margin else "L"
    if high is not None and value > high:
        return Interpretation.CRITICAL_HIGH if margin and value > high + margin else "H"
    return Interpretation.NORMAL


class DiagnosticReport(ClinicalItem):
    class Category(models.TextChoices):
        LAB = "LAB", _("laboratory")
        RAD = "RAD", _("imaging")
        OTHER = "OTH", _("other")

    code = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(_("category"), max_length=5, choices=Category.choices)
    status = models.CharField(_("status"), max_length=20, default="final")
    issued_at = models.DateTimeField(_("issued"))
    performer = models.CharField(_("performed by"), max_length=150, blank=True)
    conclusion = models.TextField(_("conclusion"), blank=True)
    document = models.ForeignKey(
        "DocumentReference", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    encounter = models.ForeignKey(Encounter, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        indexes = [models.Index(fields=["patient", "-issued_at"])]

    def __str__(self) -> str:
        return self.code.label


class Observation(ClinicalItem):
    class Category(models.TextChoices):
        VITAL_SIGNS = "vital-signs", _("vital signs")
        LABORATORY = "laboratory", _("laboratory")

    code = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    status = models.CharField(_("status"), max_length=20, default="final")
    value = models.DecimalField(_("value"), max_digits=12, decimal_places=4)
    unit = models.CharField(_("unit"), max_length=30)
    ref_low = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    ref_high = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    interpretation = models.CharField(
        _("interpretation"), max_length=2, choices=Interpretation.choices, blank=True
    )
    effective_at = models.DateTimeField(_("measured"))
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default="manual")
    device_id = models.CharField(_("device"), max_length=64, blank=True)
    report = models.ForeignKey(
        DiagnosticReport, on_delete=models.SET_NULL, null=True, blank=True, related_name="results"
    )
    encounter = models.ForeignKey(Encounter, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        verbose_name = _("observation")
        verbose_name_plural = _("observations")
        indexes = [
            models.Index(fields=["patient", "-effective_at"]),
            models.Index(fields=["patient", "code", "-effective_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.code.label}: {self.display_value}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.interpretation:
            self.interpretation = interpret(self.value, self.ref_low, self.ref_high)
        super().save(*args, **kwargs)

    @property
    def display_value(self) -> str:
        return f"{self.value.normalize():f} {self.unit}".strip()


class ObservationNote(models.Model):
    """An annotation on an observation (FHIR Observation.note); the text is encrypted."""

    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = EncryptedTextField(_("annotation"))
    created_at = models.DateTimeField(_("written"), default=timezone.now)

    class Meta:
        verbose_name = _("annotation")
        verbose_name_plural = _("annotations")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"annotation {self.pk} on observation {self.observation_id}"


class DocumentReference(ClinicalItem):
    """An uploaded file, stored encrypted under MEDIA_ROOT with a random name."""

    class Category(models.TextChoices):
        """LOINC document classes; `fhir.DOCUMENT_LOINC` holds the codes."""

        REPORT = "report", _("report")
        PHOTO = "photo", _("photo")
        LETTER = "letter", _("letter")
        IMAGING = "imaging", _("imaging")
        CONSENT = "consent", _("consent")
        OTHER = "other", _("other")

    title = models.CharField(_("title"), max_length=200)
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    status = models.CharField(_("status"), max_length=20, default="current")
    content_type = models.CharField(_("content type"), max_length=60)
    size = models.PositiveIntegerField(_("size (bytes)"))
    sha256 = models.CharField(max_length=64)
    filename = models.CharField(_("file name"), max_length=120)
    storage_name = models.CharField(max_length=80, unique=True)
    thumbnail_name = models.CharField(max_length=80, blank=True)
    key_id = models.CharField(max_length=16)
    encounter = models.ForeignKey(Encounter, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        indexes = [models.Index(fields=["patient", "-recorded_at"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class ClinicalNote(ClinicalItem):
    """A signed note. Amending writes a new note that points to the one it corrects."""

    class Kind(models.TextChoices):
        """LOINC document types; `fhir.NOTE_LOINC` holds the codes."""

        PROGRESS = "progress", _("progress note")
        CONSULTATION = "consultation", _("consultation note")
        TELEPHONE = "telephone", _("telephone note")
        DISCHARGE = "discharge", _("discharge summary")

    class Status(models.TextChoices):
        CURRENT = "current", _("current")
        AMENDED = "amended", _("amended")

    kind = models.CharField(_("type"), max_length=20, choices=Kind.choices, default="progress")
    title = models.CharField(_("title"), max_length=200)
    text = EncryptedTextField(_("text"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default="current")
    signed_at = models.DateTimeField(_("signed"))
    signature = models.CharField(max_length=64)
    amends = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="amendments"
    )
    amendment_reason = models.CharField(_("reason for the amendment"), max_length=300, blank=True)
    encounter = models.ForeignKey(Encounter, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        verbose_name = _("clinical note")
        verbose_name_plural = _("clinical notes")
        indexes = [models.Index(fields=["patient", "-signed_at"])]

    def __str__(self) -> str:
        return self.title
