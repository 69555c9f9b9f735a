"""Care teams: the only code that grants or revokes access to a patient's record."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..access import ACCESS_PERMISSION
from ..models import CareTeam, CareTeamMember, Patient
from . import RecordError


def default_team(patient: Patient) -> CareTeam:
    team = patient.care_teams.filter(active=True).order_by("pk").first()
    if team is None:
        team = CareTeam.objects.create(
            patient=patient,
            name=f"Équipe de soins — {patient.full_name}",
            organization=patient.organization,
        )
    return team


def _sync_permission(user: User, patient: Patient) -> None:
    """Grant access while the user has a current membership on an active team, else revoke."""
    current = CareTeamMember.objects.filter(
        user=user, care_team__patient=patient, care_team__active=True, ended_at__isnull=True
    ).exists()
    if current and user.is_active:
        assign_perm(ACCESS_PERMISSION, user, patient)
    else:
        remove_perm(ACCESS_PERMISSION, user, patient)


@transaction.atomic
def do_add_member(
    team: CareTeam,
    user: User,
    *,
    by: User | None = None,
    is_lead: bool = False,
    request: HttpRequest | None = None,
) -> CareTeamMember:
    if user.role not in CLINICAL_ROLES or not user.is_active:
        raise RecordError("Only active clinical staff can join a care team.")
    member, created = CareTeamMember.objects.get_or_create(
        care_team=team,
        user=user,
        ended_at__isnull=True,
        defaults={"role": user.role, "is_lead": is_lead},
    )
    _sync_permission(user, team.patient)
    if created:
        audit(
            Action.UPDATE,
            request=request,
            actor=by,
            obj=team,
            patient_id=str(team.patient_id),
            detail={"care_team": "member-added", "member": user.email},
        )
    return member


@transaction.atomic
def do_remove_member(
    member: CareTeamMember, *, by: User | None = None, request: HttpRequest | None = None
) -> None:
    """End the membership; the access goes with it at once (unless another team holds it)."""
    member = CareTeamMember.objects.select_for_update().get(pk=member.pk)
    if member.ended_at is not None:
        return
    member.ended_at = timezone.now()
    member.save(update_fields=["ended_at"])
    team = member.care_team
    _sync_permission(member.user, team.patient)
    audit(
        Action.UPDATE,
        request=request,
        actor=by,
        obj=team,
        patient_id=str(team.patient_id),
        detail={"care_team": "member-removed", "member": member.user.email},
    )


def current_members(patient: Patient) -> list[CareTeamMember]:
    return list(
        CareTeamMember.objects.filter(
            care_team__patient=patient, care_team__active=True, ended_at__isnull=True
        )
        .select_related("user")
        .order_by("-is_lead", "user__last_name")
    )


def clinical_memberships(patient_ids: Iterable[int]) -> QuerySet[CareTeamMember]:
    """Current memberships of active clinical staff in the patients' active care teams."""
    return CareTeamMember.objects.filter(
        care_team__patient_id__in=list(patient_ids),
        care_team__active=True,
        ended_at__isnull=True,
        user__is_active=True,
        user__role__in=list(CLINICAL_ROLES),
    )


def do_revoke_all_for_user(user: User) -> int:
    """End every membership of a departing user (called when an account is deactivated)."""
    ended = 0
    for member in CareTeamMember.objects.filter(user=user, ended_at__isnull=True):
        do_remove_member(member)
        ended += 1
    return ended
