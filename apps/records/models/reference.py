"""Reference data: codes of real code systems, the medication list, interactions."""

from __future__ import annotations

from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

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
