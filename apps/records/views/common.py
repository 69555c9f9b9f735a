"""Plumbing shared by the record's pages in both portals (clinic and patient)."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User

from ..access import Level, PatientAccess, deny, get_patient_for_user

PAGE_SIZE = 25

# (tab key, label, clinic url name, patient url name or None, needs clinical access)
TABS: list[tuple[str, Any, str, str | None]] = [
    ("summary", _("Summary"), "records:chart", "records:my_record"),
    ("results", _("Results"), "records:results", "records:my_results"),
    ("monitoring", _("Monitoring"), "devices:patient_monitoring", "devices:my_monitoring"),
    ("reports", _("Reports"), "records:reports", "records:my_reports"),
    ("documents", _("Documents"), "records:documents", "records:my_documents"),
    ("notes", _("Notes"), "records:notes", None),
    ("prescriptions", _("Prescriptions"), "records:prescriptions", "records:my_prescriptions"),
    ("timeline", _("Timeline"), "records:timeline", "records:my_timeline"),
    ("devices", _("Devices"), "devices:patient_devices", "devices:my_devices"),
    ("care_team", _("Care team"), "records:care_team", None),
]
PATIENT_EXTRA_TABS: list[tuple[str, Any, str]] = [
    ("access_log", _("Who accessed my record"), "records:access_log"),
    ("export", _("Download my data"), "records:export"),
]


def patient_access(
    request: HttpRequest,
    pid: int | None,
    what: str,
    *,
    need: Level = Level.CLINICAL,
    action: str | None = "read",
) -> PatientAccess:
    """The access for this page: `pid=None` means the signed-in patient's own record."""
    user: User = request.user  # type: ignore[assignment]
    if pid is None:
        record = getattr(user, "patient_record", None) if user.is_patient else None
        if record is None:
            raise deny(user, request=request, what=what)
        pid = record.pk
    elif not user.is_staff_member:
        # Clinic addresses are for staff; patients read their record in the portal.
        raise deny(user, request=request, what=what, object_id=pid)
    return get_patient_for_user(user, pid, request=request, need=need, what=what, action=action)


def tab_links(access: PatientAccess, current: str) -> list[dict[str, Any]]:
    links = []
    if access.is_patient_self:
        for key, label, _clinic, mine in TABS:
            if mine:
                links.append({"key": key, "label": label, "url": reverse(mine)})
        for key, label, name in PATIENT_EXTRA_TABS:
            links.append({"key": key, "label": label, "url": reverse(name)})
    elif access.clinical:
        for key, label, clinic, _mine in TABS:
            links.append(
                {"key": key, "label": label, "url": reverse(clinic, args=[access.patient.pk])}
            )
    for link in links:
        link["current"] = link["key"] == current
    return links


def chart_url(access: PatientAccess, tab: str) -> str:
    """The URL of a tab for whoever is looking (patient portal or clinic)."""
    for key, _label, clinic, mine in TABS:
        if key == tab:
            if access.is_patient_self and mine:
                return reverse(mine)
            return reverse(clinic, args=[access.patient.pk])
    raise KeyError(tab)


def paginate(
    request: HttpRequest, queryset: QuerySet[Any] | list[Any], size: int = PAGE_SIZE
) -> Page:
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def render_chart(
    request: HttpRequest,
    access: PatientAccess,
    tab: str,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render a page of the record with the patient banner and the tabs."""
    full = {
        "access": access,
        "patient": access.patient,
        "tabs": tab_links(access, tab),
        "tab": tab,
        "is_patient_self": access.is_patient_self,
        **(context or {}),
    }
    return render(request, template, full, status=status)
