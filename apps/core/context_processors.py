from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def _nav(user: Any) -> list[dict[str, Any]]:
    if not user.is_authenticated:
        return []
    if user.is_patient:
        items = [(_("Home"), reverse("home")), (_("My record"), reverse("records:my_record"))]
        items.append((_("My appointments"), reverse("scheduling:my_appointments")))
    else:
        items = [(_("Clinic"), reverse("clinic_home"))]
        if user.is_clinician:
            items.append((_("My patients"), reverse("records:my_patients")))
            items.append((_("Agenda"), reverse("scheduling:team_agenda")))
            items.append((_("Video consultations"), reverse("teleconsult:consultations")))
            items.append((_("Follow-ups"), reverse("scheduling:follow_ups")))
            items.append((_("Monitoring"), reverse("devices:dashboard")))
            items.append((_("Alerts"), reverse("devices:alerts")))
            items.append((_("Devices"), reverse("devices:registry")))
        if user.is_staff:
            items.append((_("Administration"), reverse("admin:index")))
            items.append((_("API"), reverse("api-docs")))
    items.append((_("Notifications"), reverse("notifications:inbox")))
    items.append((_("My account"), reverse("profile")))
    return [{"label": label, "url": url} for label, url in items]


def portal(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None:
        return {}
    context: dict[str, Any] = {"nav_items": _nav(user), "in_clinic": False}
    if user.is_authenticated:
        from apps.notifications.services import unread_count

        context["unread_count"] = unread_count(user)
        context["in_clinic"] = user.is_staff_member
        if user.is_staff_member:
            context["idle_timeout"] = settings.STAFF_IDLE_TIMEOUT
    return context
