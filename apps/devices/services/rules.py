"""What physicians change: a patient's threshold rules, and the defaults per condition."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from apps.accounts.models import Role
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess
from apps.records.models import Condition, Patient

from ..defaults import TEMPLATES, Template, templates_for
from ..models import Severity, ThresholdRule
from ..units import MEASUREMENTS
from . import DeviceError

RULE_FIELDS = (
    "code",
    "kind",
    "limit",
    "window",
    "n_of",
    "m_of",
    "hysteresis",
    "severity",
    "escalate_after",
)
MAX_M = 50
MAX_WINDOW = dt.timedelta(days=30)


def check_may_set_thresholds(access: PatientAccess) -> None:
    """Physicians of the patient's care team (or in an emergency access) set thresholds."""
    if access.is_patient_self or not access.clinical or access.user.role != Role.PHYSICIAN:
        raise DeviceError(_("Only the patient's physicians can change thresholds."))


def check_rule(fields: dict[str, Any]) -> None:
    """The rule makes sense: known measurement, limit in the measurable range, N ≤ M…"""
    measurement = MEASUREMENTS.get(fields.get("code", ""))
    if measurement is None:
        raise DeviceError(_("Choose a measurement that devices send."))
    kind = fields.get("kind")
    if kind not in ThresholdRule.Kind.values:
        raise DeviceError(_("Choose a kind of rule."))
    if fields.get("severity") not in Severity.values:
        raise DeviceError(_("Choose a severity."))
    limit: Decimal = fields["limit"]
    trend = kind in (ThresholdRule.Kind.RISE, ThresholdRule.Kind.FALL)
    span = measurement.high - measurement.low
    if trend:
        window = fields.get("window")
        if window is None or not dt.timedelta(hours=1) <= window <= MAX_WINDOW:
            raise DeviceError(_("A rise or fall rule needs a period between 1 hour and 30 days."))
        if not 0 < limit < span:
            raise DeviceError(
                _("The change must be between 0 and %(span)s %(unit)s.")
                % {"span": span.normalize(), "unit": measurement.unit}
            )
    else:
        fields["window"] = None
        if not measurement.low < limit < measurement.high:
            raise DeviceError(
                _("The limit must lie between %(low)s and %(high)s %(unit)s.")
                % {"low": measurement.low, "high": measurement.high, "unit": measurement.unit}
            )
    n_of, m_of = fields.get("n_of", 1), fields.get("m_of", 1)
    if not 1 <= n_of <= m_of <= MAX_M:
        raise DeviceError(
            _("N must be at least 1 and at most M, and M at most %(max)s.") % {"max": MAX_M}
        )
    hysteresis = fields.get("hysteresis") or Decimal(0)
    if hysteresis < 0 or hysteresis >= span / 2:
        raise DeviceError(_("The hysteresis must be positive and smaller than the range."))
    fields["hysteresis"] = hysteresis
    escalate_after = fields.get("escalate_after")
    if escalate_after is not None and not (
        dt.timedelta(minutes=1) <= escalate_after <= dt.timedelta(days=1)
    ):
        raise DeviceError(_("The escalation delay must be between 1 minute and 1 day."))


def _audit(
    rule: ThresholdRule, access: PatientAccess, request: HttpRequest | None, **extra: Any
) -> None:
    audit(
        Action.UPDATE if extra.get("change") != "create" else Action.CREATE,
        request=request,
        actor=access.user,
        object_type="devices.thresholdrule",
        object_id=str(rule.pk),
        patient_id=str(rule.patient_id),
        detail={
            "code": rule.code,
            "kind": rule.kind,
            "limit": str(rule.limit),
            "severity": rule.severity,
            **extra,
        },
    )


@transaction.atomic
def do_create_rule(
    access: PatientAccess,
    fields: dict[str, Any],
    *,
    request: HttpRequest | None = None,
    template: str = "",
) -> ThresholdRule:
    check_may_set_thresholds(access)
    fields = {k: fields.get(k) for k in RULE_FIELDS if k in fields}
    check_rule(fields)
    rule = ThresholdRule.objects.create(
        patient=access.patient, created_by=access.user, template=template, **fields
    )
    _audit(rule, access, request, change="create", template=template)
    return rule


@transaction.atomic
def do_update_rule(
    access: PatientAccess,
    rule: ThresholdRule,
    fields: dict[str, Any],
    *,
    request: HttpRequest | None = None,
) -> ThresholdRule:
    """Change a rule; it keeps its firing state (the next reading re-evaluates it)."""
    check_may_set_thresholds(access)
    rule = ThresholdRule.objects.select_for_update().get(pk=rule.pk, patient=access.patient)
    merged = {k: getattr(rule, k) for k in RULE_FIELDS} | {
        k: v for k, v in fields.items() if k in RULE_FIELDS
    }
    check_rule(merged)
    for key, value in merged.items():
        setattr(rule, key, value)
    rule.save()
    _audit(rule, access, request, change="update")
    return rule


@transaction.atomic
def do_set_rule_active(
    access: PatientAccess, rule: ThresholdRule, active: bool, *, request: HttpRequest | None = None
) -> ThresholdRule:
    """Pause or resume a rule; a paused rule starts armed again when resumed."""
    check_may_set_thresholds(access)
    rule = ThresholdRule.objects.select_for_update().get(pk=rule.pk, patient=access.patient)
    rule.active = active
    rule.firing = False
    rule.save(update_fields=["active", "firing", "updated_at"])
    _audit(rule, access, request, change="resume" if active else "pause")
    return rule


@transaction.atomic
def do_apply_template(
    access: PatientAccess, key: str, *, request: HttpRequest | None = None
) -> list[ThresholdRule]:
    """Add a template's rules the patient does not have yet (same measurement, kind, limit)."""
    check_may_set_thresholds(access)
    template = TEMPLATES.get(key)
    if template is None:
        raise DeviceError(_("Unknown set of defaults."))
    existing = set(
        ThresholdRule.objects.filter(patient=access.patient).values_list("code", "kind", "limit")
    )
    created = []
    for default in template.rules:
        if (default.code, default.kind, default.limit) in existing:
            continue
        fields = {
            "code": default.code,
            "kind": default.kind,
            "limit": default.limit,
            "window": default.window,
            "n_of": default.n_of,
            "m_of": default.m_of,
            "hysteresis": default.hysteresis,
            "severity": default.severity,
        }
        created.append(do_create_rule(access, fields, request=request, template=key))
    return created


def suggested_templates(patient: Patient) -> list[Template]:
    """The defaults that suit the patient's active conditions."""
    codes = list(
        Condition.objects.filter(
            patient=patient, clinical_status__in=["active", "recurrence"]
        ).values_list("code__code", flat=True)
    )
    return templates_for(codes)


def rules_for(access: PatientAccess) -> QuerySet[ThresholdRule]:
    if not access.clinical:
        return ThresholdRule.objects.none()
    return ThresholdRule.objects.filter(patient=access.patient).order_by(
        "-active", "code", "kind", "limit"
    )
