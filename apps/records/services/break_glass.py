"""Break-the-glass: time-limited emergency access outside the care team."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import override

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.notifications.services import notify

from ..access import active_break_glass, deny
from ..models import BreakGlassAccess, Patient
from . import RecordError
from .care_team import current_members

MIN_REASON_LENGTH = 10


@transaction.atomic
def do_break_glass(
    user: User,
    patient_id: int,
    reason: str,
    *,
    request: HttpRequest | None = None,
    hours: int | None = None,
) -> BreakGlassAccess:
    """Open the record in an emergency: audited, notified to the care team and the patient."""
    patient = Patient.objects.filter(pk=patient_id).first()
    if patient is None or user.role not in CLINICAL_ROLES or not user.is_active:
        raise deny(user, request=request, what="break-glass", object_id=patient_id, patient_id="")
    reason = " ".join(reason.split())
    if len(reason) < MIN_REASON_LENGTH:
        raise RecordError(_("Give the reason for the emergency access (at least 10 characters)."))
    existing = active_break_glass(user, patient.pk)
    if existing is not None:
        return existing
    now = timezone.now()
    grant = BreakGlassAccess.objects.create(
        user=user,
        patient=patient,
        reason=reason,
        started_at=now,
        expires_at=now + timedelta(hours=hours or settings.RECORDS_BREAK_GLASS_HOURS),
    )
    audit(
        Action.BREAK_GLASS,
        request=request,
        actor=user,
        obj=grant,
        patient_id=str(patient.pk),
        detail={"reason": reason, "expires_at": grant.expires_at.isoformat()},
    )
    who = user.get_full_name() or user.email
    for member in current_members(patient):
        with override(member.user.preferred_language):
            notify(
                member.user,
                "record.access",
                _("Emergency access to a patient's record"),
                _("%(who)s opened the record of a patient of your care team in an emergency.")
                % {"who": who},
                link=reverse("records:chart", args=[patient.pk]),
            )
    if patient.user is not None:
        with override(patient.user.preferred_language):
            notify(
                patient.user,
                "record.access",
                _("Emergency access to your record"),
                _(
                    "%(who)s opened your record in an emergency. "
                    "You can see it in your record's access log."
                )
                % {"who": who},
                link=reverse("records:access_log"),
            )
    return grant


def do_end_break_glass(grant: BreakGlassAccess, *, request: HttpRequest | None = None) -> None:
    if grant.ended_at is None and grant.expires_at > timezone.now():
        grant.ended_at = timezone.now()
        grant.save(update_fields=["ended_at"])
        audit(
            Action.UPDATE,
            request=request,
            actor=grant.user,
            obj=grant,
            patient_id=str(grant.patient_id),
            detail={"break_glass": "ended"},
        )
