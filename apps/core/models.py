"""Abstract bases shared by the apps' models."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models


class FhirResource(models.Model):
    """A row published as a FHIR resource: an opaque stable id, a version and a last update.

    The FHIR id is never the database key (which is sequential and would leak volumes).
    `version` goes up by one at each save of an existing row (FHIR `meta.versionId`, ETags).
    """

    fhir_id = models.UUIDField("FHIR id", default=uuid.uuid4, unique=True, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            self.version += 1
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "version", "updated_at"}
        super().save(*args, **kwargs)
