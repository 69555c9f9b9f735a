"""Remote-monitoring pages: the clinicians' dashboard and a patient's monitoring tab.

The dashboard lists the monitored patients of the user's care teams (one audit row naming them);
the tab serves both portals like the chart's other tabs (`pid=None`: my own record), through
`patient_access`. static/js/monitoring.js keeps both pages live.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny, patients_for_user, sensitivities_for
from apps.records.views.common import paginate, patient_access, render_chart

from ..models import Alert, Device, Severity, ThresholdRule
from ..services.alerts import describe, measurement_label, unhandled_alerts_for
from ..services.dashboard import (
    DEFAULT_PERIOD,
    PERIODS,
    SPARK_HEIGHT,
    SPARK_WIDTH,
    SPARKLINE_PERIOD,
    dashboard_rows,
    monitored,
    patient_charts,
    plain_unit,
    sparkline_points,
)
from ..units import MEASUREMENTS
from .alerts import HandleAlertForm

TAB = "monitoring"
DASHBOARD_PAGE_SIZE = 50
BANNER_SIZE = 20  # unhandled alerts listed at the top; the alerts page lists them all
PERIOD_LABELS = {
    "24h": gettext_lazy("24 hours"),
    "7d": gettext_lazy("7 days"),
    "30d": gettext_lazy("30 days"),
}
STATUS_LABELS = {
    "critical": gettext_lazy("Critical"),
    "warning": gettext_lazy("Warning"),
    "info": gettext_lazy("Outside the limit"),
    "high": gettext_lazy("High"),
    "low": gettext_lazy("Low"),
    "normal": gettext_lazy("Normal"),
}


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _page_texts() -> dict[str, Any]:
    """What monitoring.js writes into the page, in the page's language."""
    return {
        "status": {key: str(label) for key, label in STATUS_LABELS.items()},
        "measurements": {code: measurement_label(code) for code in MEASUREMENTS},
        "units": {code: plain_unit(m.unit) for code, m in MEASUREMENTS.items()},
        "states": {key: str(label) for key, label in Alert.State.choices},
        "severities": {key: str(label) for key, label in Severity.choices},
        "new_alert": _("New alert for %(patient)s: %(summary)s"),
        "handled_by": _("by %(name)s"),
        "ack_failed": _("The alert could not be acknowledged: open it to see why."),
        "alert_count": {
            "one": ngettext("%(n)s alert", "%(n)s alerts", 1),
            "other": ngettext("%(n)s alert", "%(n)s alerts", 2),
        },
        "no_alert": _("No open alert"),
        "highest": _("highest: %(severity)s"),
        "patient_url": reverse("devices:patient_monitoring", args=[0]).replace("/0/", "/%(pid)s/"),
        "spark_title": _("%(label)s, last 24 hours: from %(low)s to %(high)s %(unit)s"),
        "limit_above": _("Alert above %(value)s %(unit)s"),
        "limit_below": _("Alert below %(value)s %(unit)s"),
        "chart_label": _("Chart of %(label)s over the period"),
    }


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The monitored patients of my care teams with their latest values, and unhandled alerts."""
    user = _user(request)
    if user.role not in CLINICAL_ROLES:
        raise deny(user, request=request, what="monitoring-dashboard")
    page = paginate(request, monitored(patients_for_user(user)), DASHBOARD_PAGE_SIZE)
    rows = dashboard_rows(list(page.object_list), sensitivities_for(user))
    unhandled = unhandled_alerts_for(user)
    banner = list(unhandled[: BANNER_SIZE + 1])
    more = len(banner) > BANNER_SIZE
    banner = banner[:BANNER_SIZE]
    # One row for the page (a constant cost), naming every patient whose data it shows.
    audit(
        Action.READ,
        request=request,
        object_type="devices.monitoring",
        detail={
            "what": "monitoring-dashboard",
            "patients": sorted({row.patient.pk for row in rows} | {a.patient_id for a in banner}),
        },
    )
    now = timezone.now()
    for row in rows:
        row.severity_label = Severity(row.severity).label if row.severity else ""  # type: ignore[attr-defined]
        for item in row.measurements:
            item.spark = sparkline_points(item.points, now)  # type: ignore[attr-defined]
            item.status_label = STATUS_LABELS.get(item.status, "")  # type: ignore[attr-defined]
    context = {
        "page": page,
        "rows": rows,
        "banner": [(alert, describe(alert)) for alert in banner],
        "more_alerts": more,
        "form": HandleAlertForm(),
        "texts": _page_texts(),
        "spark": {
            "width": SPARK_WIDTH,
            "height": SPARK_HEIGHT,
            "period": int(SPARKLINE_PERIOD.total_seconds() * 1000),
        },
    }
    return render(request, "devices/dashboard.html", context)


@login_required
def patient_monitoring(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    """Charts of the device readings; the clinic adds limits, open alerts and the rules."""
    access = patient_access(request, pid, "monitoring")
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    clinic = not access.is_patient_self
    charts = patient_charts(
        access.patient,
        access.sensitivities,
        period,
        with_limits=clinic,
        with_trends=not clinic,
    )
    context: dict[str, Any] = {
        "charts": charts,
        "charts_json": [chart.as_json() for chart in charts],
        "period": period,
        "period_ms": int(PERIODS[period][0].total_seconds() * 1000),
        "periods": [(key, PERIOD_LABELS[key]) for key in PERIODS],
        "texts": _page_texts(),
    }
    if clinic:
        # Acknowledged alerts stay listed until resolved: someone is on them, not done.
        alerts = (
            Alert.objects.filter(patient=access.patient)
            .exclude(state=Alert.State.RESOLVED)
            .select_related("patient", "rule", "acknowledged_by")
        )
        rules = ThresholdRule.objects.filter(patient=access.patient, active=True)
        context.update(
            {
                "alerts": [(alert, describe(alert)) for alert in alerts.order_by("-opened_at")],
                "rules": [
                    (rule, measurement_label(rule.code), plain_unit(rule.unit)) for rule in rules
                ],
                "active_devices": Device.objects.filter(
                    patient=access.patient, status=Device.Status.ACTIVE
                ).count(),
                "form": HandleAlertForm(),
            }
        )
    return render_chart(request, access, TAB, "devices/monitoring.html", context)
