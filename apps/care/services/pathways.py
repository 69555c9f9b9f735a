"""Care pathways (reference templates): what a pathway's monitoring line becomes on a patient,
the version bump after each change, and what a pathway will create (the new-plan page).

A pathway's thresholds become the patient's devices `ThresholdRule`s, validated by the devices
app's own `check_rule`. They are created for whichever clinician builds the plan (coordinator,
nurse, physician): they are the administrators' approved limits, not a physician's choice for
this patient, which the patient's physicians then adjust on the monitoring page.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Prefetch, QuerySet

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.devices.defaults import TEMPLATES
from apps.devices.models import ThresholdRule
from apps.devices.services import DeviceError
from apps.devices.services.rules import check_rule
from apps.records.access import PatientAccess

from ..models import (
    Pathway,
    PathwayActivity,
    PathwayGoal,
    PathwayQuestionnaire,
    PathwayThreshold,
)
from . import CareError

# A trend rule (rise, fall) compares readings within a period. A pathway line may leave the
# period and the hysteresis empty: they come from the devices defaults of the same measurement
# and kind (the closest limit), else a trend is measured over this period.
DEFAULT_TREND_WINDOW = dt.timedelta(days=3)
TRENDS = (ThresholdRule.Kind.RISE, ThresholdRule.Kind.FALL)


def template_key(pathway: Pathway) -> str:
    """How the threshold rules made from the pathway are marked (`ThresholdRule.template`)."""
    return f"pathway:{pathway.code}"


def rule_fields(
    code: str,
    kind: str,
    limit: Decimal,
    n_of: int,
    m_of: int,
    severity: str,
    window: dt.timedelta | None = None,
    hysteresis: Decimal | None = None,
) -> dict[str, Any]:
    """The devices rule fields of a pathway threshold, the empty window and hysteresis taken
    from the devices defaults."""
    candidates = [
        rule
        for template in TEMPLATES.values()
        for rule in template.rules
        if rule.code == code and rule.kind == kind
    ]
    closest = min(candidates, key=lambda rule: abs(rule.limit - limit)) if candidates else None
    if window is None and closest is not None:
        window = closest.window
    if kind in TRENDS and window is None:
        window = DEFAULT_TREND_WINDOW
    if hysteresis is None:
        hysteresis = closest.hysteresis if closest is not None else Decimal(0)
    return {
        "code": code,
        "kind": kind,
        "limit": limit,
        "window": window if kind in TRENDS else None,
        "n_of": n_of,
        "m_of": m_of,
        "hysteresis": hysteresis,
        "severity": severity,
    }


def threshold_fields(threshold: PathwayThreshold) -> dict[str, Any]:
    return rule_fields(
        threshold.code,
        threshold.kind,
        threshold.limit,
        threshold.n_of,
        threshold.m_of,
        threshold.severity,
        threshold.window,
        threshold.hysteresis,
    )


def check_threshold(fields: dict[str, Any]) -> None:
    """The devices app's validation of a rule, as a CareError."""
    try:
        check_rule(dict(fields))
    except DeviceError as error:
        raise CareError(str(error)) from None


def apply_thresholds(
    access: PatientAccess, pathway: Pathway, *, request: Any = None
) -> list[ThresholdRule]:
    """Create the pathway's monitoring limits as the patient's threshold rules, leaving out
    those the patient already has a rule for (same measurement and kind, active or paused:
    a physician's own limit or pause wins over the template)."""
    existing = set(ThresholdRule.objects.filter(patient=access.patient).values_list("code", "kind"))
    created = []
    with transaction.atomic():
        for threshold in pathway.thresholds.all():
            if (threshold.code, threshold.kind) in existing:
                continue
            fields = threshold_fields(threshold)
            check_threshold(fields)
            rule = ThresholdRule.objects.create(
                patient=access.patient,
                created_by=access.user,
                template=template_key(pathway),
                **fields,
            )
            existing.add((threshold.code, threshold.kind))
            audit(
                Action.CREATE,
                request=request,
                actor=access.user,
                object_type="devices.thresholdrule",
                object_id=str(rule.pk),
                patient_id=str(rule.patient_id),
                detail=access.audit_detail(
                    code=rule.code,
                    kind=rule.kind,
                    limit=str(rule.limit),
                    severity=rule.severity,
                    change="create",
                    template=rule.template,
                    what="care plan",
                ),
            )
            created.append(rule)
    return created


def do_bump_version(pathway: Pathway) -> Pathway:
    """A new version of the pathway after a change of it or of its lines (plans keep theirs)."""
    Pathway.objects.filter(pk=pathway.pk).update(version=F("version") + 1)
    pathway.refresh_from_db(fields=["version", "updated_at"])
    return pathway


def pathways_for_choice() -> QuerySet[Pathway]:
    """The active pathways with every line they will create (four queries, however many)."""
    return Pathway.objects.filter(active=True).prefetch_related(
        Prefetch("goals", queryset=PathwayGoal.objects.order_by("order", "pk")),
        Prefetch("activities", queryset=PathwayActivity.objects.order_by("order", "pk")),
        Prefetch("thresholds", queryset=PathwayThreshold.objects.order_by("code", "kind")),
        Prefetch(
            "questionnaires",
            queryset=PathwayQuestionnaire.objects.select_related("questionnaire").order_by("pk"),
        ),
    )
