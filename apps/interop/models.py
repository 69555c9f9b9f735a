"""Interop state: backend clients of the FHIR API and Bulk Data export jobs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class FhirClient(models.Model):
    """A backend system allowed to use the FHIR API with OAuth2 client credentials.

    The OAuth2 application holds the client id and hashed secret; this row says which SMART
    `system/` scopes the client may be granted (a token request asking for more is refused).
    """

    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="fhir_client",
        verbose_name=_("OAuth2 application"),
    )
    allowed_scopes = models.CharField(
        _("allowed scopes"),
        max_length=1000,
        help_text=_("Space-separated SMART scopes, e.g. 'system/Patient.cruds system/*.rs'."),
    )
    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="fhir_clients",
        verbose_name=_("organization"),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("FHIR backend client")
        verbose_name_plural = _("FHIR backend clients")

    def __str__(self) -> str:
        return str(self.application.name or self.application.client_id)


class ExportJob(models.Model):
    """A Bulk Data `$export` request: who asked, what, and where the NDJSON files are."""

    class Level(models.TextChoices):
        SYSTEM = "system", _("System")
        PATIENT = "patient", _("All patients")
        GROUP = "group", _("Group")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The caller that may poll and download: "user:<pk>" or "client:<client id>".
    requester = models.CharField(_("requester"), max_length=200, db_index=True)
    # What is needed to rebuild the caller's scope in the worker (kind, user id, scopes).
    caller = models.JSONField(_("caller"), default=dict)
    level = models.CharField(_("level"), max_length=10, choices=Level.choices)
    group_id = models.CharField(_("group"), max_length=64, blank=True)
    types = models.JSONField(_("resource types"), default=list)
    since = models.DateTimeField(_("since"), null=True, blank=True)
    request_url = models.CharField(_("request URL"), max_length=2000)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    resources_total = models.PositiveIntegerField(_("resources to export"), default=0)
    resources_done = models.PositiveIntegerField(_("resources exported"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    class Meta:
        verbose_name = _("FHIR export job")
        verbose_name_plural = _("FHIR export jobs")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"$export {self.level} {self.id} ({self.status})"

    @property
    def progress(self) -> int:
        """Percent done (0-100)."""
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.resources_total:
            return 0
        return min(99, self.resources_done * 100 // self.resources_total)


class ExportFile(models.Model):
    """One NDJSON file of an export: one resource type, up to a fixed number of lines."""

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="files")
    resource_type = models.CharField(_("resource type"), max_length=64)
    index = models.PositiveIntegerField(_("index"))
    # File name under the export storage directory (random; never derived from data).
    storage_name = models.CharField(_("storage name"), max_length=100, unique=True)
    count = models.PositiveIntegerField(_("resources"), default=0)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    key_id = models.CharField(_("key id"), max_length=16, blank=True)

    class Meta:
        verbose_name = _("FHIR export file")
        verbose_name_plural = _("FHIR export files")
        ordering = ["resource_type", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "resource_type", "index"], name="interop_exportfile_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}-{self.index}.ndjson"
