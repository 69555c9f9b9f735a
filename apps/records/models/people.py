"""Patients, practitioners, care teams and emergency accesses."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from apps.accounts.models import Organization
from apps.core.models import FhirResource

# ---------------------------------------------------------------------------------------------
# People


class Sex(models.TextChoices):
    """FHIR AdministrativeGender."""

    FEMALE = "female", _("female")
    MALE = "male", _("male")
    OTHER = "other", _("other")
    UNKNOWN = "unknown", _("unknown")


class Patient(FhirResource):
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


class Practitioner(FhirResource):
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


class PractitionerRole(FhirResource):
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


class CareTeam(FhirResource):
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
