"""Clinical data: every row belongs to one patient and may carry a sensitive category."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField
from apps.core.models import FhirResource

from .people import Patient
from .reference import Concept, Medication, Sensitivity

# ---------------------------------------------------------------------------------------------
# Clinical data. Every row belongs to one patient and may carry a sensitive category.


class ClinicalItem(FhirResource):
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
    # The current medication this line takes over from (a dose change prepared by decision
    # support): signing the line ends it, and its reminders stop.
    replaces = models.ForeignKey(
        MedicationStatement,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replaced_by",
        verbose_name=_("replaces"),
    )

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

    # Not indexed alone: the (patient, effective_at) and (patient, code, effective_at) indexes
    # lead with it, and device ingestion appends many rows a second.
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+", db_index=False)
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
            # Readings of one device (FHIR Observation?device=, the device pages).
            models.Index(
                fields=["device_id", "-effective_at"],
                condition=~models.Q(device_id=""),
                name="observation_device_idx",
            ),
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
