"""A patient's threshold rules: the care team reads them, the patient's physicians change them.

Every page reaches the patient through `patient_access` (404 and an audit row for anyone else);
changes go through the rules services, which check the physician and audit the change.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import User
from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, deny
from apps.records.views.common import patient_access, render_chart

from ..defaults import TEMPLATES, DefaultRule
from ..forms_thresholds import RuleForm
from ..models import Severity, ThresholdRule
from ..services import DeviceError
from ..services.alerts import measurement_label
from ..services.rules import (
    check_may_set_thresholds,
    do_apply_template,
    do_create_rule,
    do_set_rule_active,
    do_update_rule,
    rules_for,
    suggested_templates,
)
from ..units import MEASUREMENTS

TAB = "monitoring"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


# --- rules in words ---------------------------------------------------------------------------


def number(value: Decimal) -> str:
    """A limit as people write it, in the active language: 160, 38,5 (fr), 3.9 (en)."""
    return formats.number_format(Decimal(f"{value.normalize():f}"))


def period(window: dt.timedelta | None) -> str:
    if window is None:
        return ""
    hours = int(window.total_seconds() // 3600)
    if hours and hours % 24 == 0:
        days = hours // 24
        return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    return ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}


def rule_in_words(code: str, kind: str, limit: Decimal, window: dt.timedelta | None) -> str:
    """ "above 160 mm[Hg]", "rises by more than 2 kg within 3 days"."""
    measurement = MEASUREMENTS.get(code)
    values = {
        "limit": number(limit),
        "unit": measurement.unit if measurement else "",
        "period": period(window),
    }
    if kind == ThresholdRule.Kind.ABOVE:
        text = _("above %(limit)s %(unit)s")
    elif kind == ThresholdRule.Kind.BELOW:
        text = _("below %(limit)s %(unit)s")
    elif kind == ThresholdRule.Kind.RISE:
        text = _("rises by more than %(limit)s %(unit)s within %(period)s")
    else:
        text = _("falls by more than %(limit)s %(unit)s within %(period)s")
    return (text % values).strip()


def _words(rule: ThresholdRule) -> str:
    return rule_in_words(rule.code, rule.kind, rule.limit, rule.window)


def n_of_m(n_of: int, m_of: int) -> str:
    if m_of == 1:
        return _("every reading")
    return _("%(n)s of the last %(m)s") % {"n": n_of, "m": m_of}


def escalation(rule: ThresholdRule) -> str:
    if rule.escalate_after is not None:
        minutes = int(rule.escalate_after.total_seconds() // 60)
        return _("%(n)s min") % {"n": minutes}
    default = settings.DEVICES_ESCALATION_MINUTES.get(rule.severity)
    if default is None:
        return _("never (information)")
    return _("default (%(n)s min)") % {"n": default}


def _template_label(key: str) -> str:
    template = TEMPLATES.get(key)
    return str(template.label) if template else key


def _rows(rules: list[ThresholdRule]) -> list[dict[str, Any]]:
    return [
        {
            "rule": rule,
            "label": measurement_label(rule.code),
            "words": _words(rule),
            "n_of_m": n_of_m(rule.n_of, rule.m_of),
            "hysteresis": f"{number(rule.hysteresis)} {rule.unit}" if rule.hysteresis else "—",
            "escalation": escalation(rule),
            "template": _template_label(rule.template) if rule.template else "",
        }
        for rule in rules
    ]


def _default_in_words(default: DefaultRule) -> dict[str, str]:
    return {
        "label": measurement_label(default.code),
        "words": rule_in_words(default.code, default.kind, default.limit, default.window),
        "n_of_m": n_of_m(default.n_of, default.m_of),
        "severity": str(Severity(default.severity).label),
        "severity_key": default.severity,
    }


def _templates(access: PatientAccess) -> list[dict[str, Any]]:
    """Every set of defaults, those suiting the patient's conditions first."""
    suggested = {template.key for template in suggested_templates(access.patient)}
    ordered = sorted(TEMPLATES.values(), key=lambda t: t.key not in suggested)
    return [
        {
            "key": template.key,
            "label": template.label,
            "suggested": template.key in suggested,
            "rules": [_default_in_words(default) for default in template.rules],
        }
        for template in ordered
    ]


# --- pages ------------------------------------------------------------------------------------


def _may_change(access: PatientAccess) -> str:
    """Empty when the user may change the thresholds, else why not."""
    try:
        check_may_set_thresholds(access)
    except DeviceError as error:
        return str(error)
    return ""


def _refuse(request: HttpRequest, access: PatientAccess, reason: str) -> HttpResponse:
    """A change by someone who may only read: audited as a denial, and the page says why."""
    audit(
        Action.DENIED,
        request=request,
        object_type="devices.thresholdrule",
        patient_id=str(access.patient.pk),
        outcome=Outcome.DENIED,
        detail=access.audit_detail(what="thresholds-change"),
    )
    return _page(request, access, errors=[reason], status=403)


def _read_audit(request: HttpRequest, access: PatientAccess) -> None:
    """A page shown after a refused change still shows the rules: a read."""
    audit(
        Action.READ,
        request=request,
        obj=access.patient,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(what="thresholds"),
    )


def _page(
    request: HttpRequest,
    access: PatientAccess,
    form: RuleForm | None = None,
    *,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    refusal = _may_change(access)
    context = {
        "rows": _rows(list(rules_for(access))),
        "templates": _templates(access),
        "may_change": not refusal,
        "form": (form or RuleForm()) if not refusal else None,
        "errors": errors or [],
    }
    return render_chart(request, access, TAB, "devices/thresholds.html", context, status)


def _rule(request: HttpRequest, access: PatientAccess, rule_id: int, what: str) -> ThresholdRule:
    """One of this patient's rules, or 404 (audited): a rule id of another patient included."""
    rule = rules_for(access).filter(pk=rule_id).first()
    if rule is None:
        raise deny(
            _user(request),
            request=request,
            what=what,
            object_type="devices.thresholdrule",
            object_id=rule_id,
            patient_id=access.patient.pk,
        )
    return rule


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def thresholds(request: HttpRequest, pid: int) -> HttpResponse:
    """The patient's rules and the defaults per condition; POST adds a rule."""
    posting = request.method == "POST"
    access = patient_access(request, pid, "thresholds", action=None if posting else Action.READ)
    if not posting:
        return _page(request, access)
    refusal = _may_change(access)
    if refusal:
        return _refuse(request, access, refusal)
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            do_create_rule(access, form.fields_for_service(), request=request)
        except DeviceError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The rule was added."))
            return redirect("devices:thresholds", pid)
    _read_audit(request, access)
    return _page(request, access, form, status=400)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def threshold_edit(request: HttpRequest, pid: int, rule_id: int) -> HttpResponse:
    posting = request.method == "POST"
    access = patient_access(request, pid, "threshold-edit", action=None if posting else Action.READ)
    rule = _rule(request, access, rule_id, "threshold-edit")
    refusal = _may_change(access)
    if refusal:
        if posting:
            return _refuse(request, access, refusal)
        # Reading one rule is reading the rules: the list shows it all.
        return redirect("devices:thresholds", pid)
    form = RuleForm(request.POST if posting else None, rule=rule)
    status = 200
    if posting:
        if form.is_valid():
            try:
                do_update_rule(access, rule, form.fields_for_service(), request=request)
            except DeviceError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, _("The rule was changed."))
                return redirect("devices:thresholds", pid)
        _read_audit(request, access)
        status = 400
    context = {
        "rule": rule,
        "label": measurement_label(rule.code),
        "words": _words(rule),
        "form": form,
    }
    return render_chart(request, access, TAB, "devices/threshold_edit.html", context, status)


@login_required
@require_POST
def threshold_active(request: HttpRequest, pid: int, rule_id: int) -> HttpResponse:
    """Pause (active=0) or resume (active=1) a rule."""
    access = patient_access(request, pid, "threshold-active", action=None)
    rule = _rule(request, access, rule_id, "threshold-active")
    refusal = _may_change(access)
    if refusal:
        return _refuse(request, access, refusal)
    active = request.POST.get("active") == "1"
    do_set_rule_active(access, rule, active, request=request)
    words = measurement_label(rule.code) + " " + _words(rule)
    if active:
        messages.success(request, _("Resumed: %(rule)s.") % {"rule": words})
    else:
        messages.success(request, _("Paused: %(rule)s.") % {"rule": words})
    return redirect("devices:thresholds", pid)


@login_required
@require_POST
def threshold_apply(request: HttpRequest, pid: int) -> HttpResponse:
    """Add a set of defaults' rules (those the patient does not have yet)."""
    access = patient_access(request, pid, "threshold-apply", action=None)
    refusal = _may_change(access)
    if refusal:
        return _refuse(request, access, refusal)
    try:
        created = do_apply_template(access, request.POST.get("template", ""), request=request)
    except DeviceError as error:
        _read_audit(request, access)
        return _page(request, access, errors=[str(error)], status=400)
    messages.success(
        request,
        ngettext("%(n)s rule added.", "%(n)s rules added.", len(created)) % {"n": len(created)},
    )
    return redirect("devices:thresholds", pid)
