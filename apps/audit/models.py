from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import models
from django.db.models.functions import Cast, Left
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    READ = "read", _("read")
    CREATE = "create", _("create")
    UPDATE = "update", _("update")
    DELETE = "delete", _("delete")
    DENIED = "denied", _("denied")
    LOGIN = "login", _("login")
    LOGIN_FAILED = "login-failed", _("login failed")
    LOGOUT = "logout", _("logout")
    OTP_VERIFIED = "otp-verified", _("second factor verified")
    OTP_FAILED = "otp-failed", _("second factor failed")
    OTP_ENABLED = "otp-enabled", _("second factor enabled")
    OTP_DISABLED = "otp-disabled", _("second factor disabled")
    EXPORT = "export", _("export")
    TOKEN_ISSUED = "token-issued", _("API token issued")
    TOKEN_REVOKED = "token-revoked", _("API token revoked")
    INVITED = "invited", _("invitation sent")
    DEACTIVATED = "deactivated", _("account deactivated")
    SESSION_EXPIRED = "session-expired", _("session expired")
    BREAK_GLASS = "break-glass", _("emergency access")
    SIGN = "sign", _("signed")


class Outcome(models.TextChoices):
    SUCCESS = "success", _("success")
    DENIED = "denied", _("denied")
    FAILURE = "failure", _("failure")


GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    """One append-only entry of the audit trail, chained to the previous one by its hash.

    There is no foreign key to users or patients on purpose: rows outlive what they name and are
    never updated (a PostgreSQL trigger rejects UPDATE and DELETE).
    """

    seq = models.BigIntegerField(_("sequence"), unique=True, editable=False)
    occurred_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    actor_id = models.BigIntegerField(_("actor id"), null=True, blank=True, db_index=True)
    actor_label = models.CharField(_("actor"), max_length=254, blank=True)
    actor_role = models.CharField(_("role"), max_length=20, blank=True)
    # Not indexed: reports filter by time (indexed) first, and every index slows each append.
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS
    )
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=100, blank=True)
    # Indexed by (patient_id, -occurred_at) in Meta: a second index on it alone would only slow
    # down every insert.
    patient_id = models.CharField(_("patient"), max_length=100, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    # Not unique-indexed: `seq` is unique and covered by the hash, so two equal hashes cannot
    # both chain; a unique index on 64 random characters (plus its LIKE twin) made every append
    # touch two large B-trees at random places. FHIR reads by id use `audit_event_fhir_id`.
    hash = models.CharField(max_length=64, editable=False)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["patient_id", "-occurred_at"]),
            # FHIR AuditEvent ids are the hash's first half (apps/audit/fhir.py): reads by id.
            models.Index(
                Cast(Left("hash", 32), output_field=models.UUIDField()),
                name="audit_event_fhir_id",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def canonical(self) -> str:
        """The bytes the hash covers: every field but the hash itself, in a fixed form."""
        return canonical_json({name: getattr(self, name) for name in HASHED_FIELDS})

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


# The fields the hash covers, in the order bulk writers COPY them (with the hash last).
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_label",
    "actor_role",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "patient_id",
    "ip",
    "user_agent",
    "detail",
    "prev_hash",
)


def canonical_json(fields: dict[str, Any]) -> str:
    """The canonical form of an event's hashed fields (a model instance or a bulk row)."""
    data = dict(fields)
    data["occurred_at"] = data["occurred_at"].isoformat(timespec="microseconds")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditCheckpoint(models.Model):
    """The head of the chain at a moment, so that removing the newest rows is detectable too."""

    created_at = models.DateTimeField(default=timezone.now)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("audit checkpoint")
        verbose_name_plural = _("audit checkpoints")
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.hash[:12]}"
