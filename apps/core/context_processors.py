from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Role

# The navigation item that carries the unread-conversations badge.
MESSAGES_BADGE = "messaging"


def _nav(user: Any) -> list[dict[str, Any]]:
    if not user.is_authenticated:
        return []
    messages_url = ""
    if user.is_patient:
        items = [(_("Home"), reverse("home")), (_("My record"), reverse("records:my_record"))]
        items.append((_("My appointments"), reverse("scheduling:my_appointments")))
        messages_url = reverse("messaging:thread_list")
        items.append((_("Messages"), messages_url))
        items.append((_("My care"), reverse("care:my_care")))
        items.append((_("My invoices"), reverse("billing:my_invoices")))
    else:
        items = [(_("Clinic"), reverse("clinic_home"))]
        if user.is_clinician:
            items.append((_("My patients"), reverse("records:my_patients")))
            # The triage inbox of the care teams' conversations.
            messages_url = reverse("messaging:inbox")
            items.append((_("Messages"), messages_url))
            items.append((_("My tasks"), reverse("care:my_tasks")))
            items.append((_("Meetings"), reverse("care:meetings")))
            items.append((_("Agenda"), reverse("scheduling:team_agenda")))
            items.append((_("Video consultations"), reverse("teleconsult:consultations")))
            items.append((_("Follow-ups"), reverse("scheduling:follow_ups")))
            items.append((_("Monitoring"), reverse("devices:dashboard")))
            items.append((_("Alerts"), reverse("devices:alerts")))
            items.append((_("Devices"), reverse("devices:registry")))
            items.append((_("Charges to review"), reverse("billing:charges_review")))
        if user.role == Role.BILLING and user.organization_id is not None:
            # The billing workspace (unbilled charges, runs), then its two daily lists.
            items.append((_("Billing"), reverse("billing:workspace")))
            items.append((_("Invoices"), reverse("billing:invoices")))
            items.append((_("Payments"), reverse("billing:payments")))
        if user.is_staff:
            items.append((_("Administration"), reverse("admin:index")))
            items.append((_("API"), reverse("api-docs")))
    items.append((_("Notifications"), reverse("notifications:inbox")))
    items.append((_("My account"), reverse("profile")))
    return [
        {"label": label, "url": url, "badge": MESSAGES_BADGE if url == messages_url else ""}
        for label, url in items
    ]


def _billing_card(user: Any) -> dict[str, Any]:
    from apps.billing.access import charges_for_user, invoices_for_user, is_billing_staff
    from apps.billing.models import ChargeItem, Invoice

    if user.is_patient:
        return {"open": invoices_for_user(user).filter(status=Invoice.Status.ISSUED).count()}
    if is_billing_staff(user):
        confirmed = charges_for_user(user).filter(status=ChargeItem.Status.CONFIRMED)
        return {"unbilled": confirmed.values("patient_id").distinct().count()}
    if user.is_clinician:
        proposed = charges_for_user(user).filter(status=ChargeItem.Status.PROPOSED)
        return {"to_review": proposed.count()}
    return {}


def _care_card(user: Any) -> dict[str, Any]:
    """The clinician's open tasks (and how many are overdue) and open proposals."""
    from django.db.models import Count, Q
    from django.utils import timezone

    from apps.care.access import my_tasks_filter, tasks_for_user
    from apps.care.models import Proposal
    from apps.care.models.tasks import OPEN_TASK_STATUSES
    from apps.records.access import patients_for_user

    tasks = tasks_for_user(user).filter(my_tasks_filter(user), status__in=OPEN_TASK_STATUSES)
    counts = tasks.aggregate(
        open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=timezone.now()))
    )
    proposals = Proposal.objects.filter(
        status=Proposal.Status.OPEN, patient__in=patients_for_user(user).values("pk")
    ).count()
    return {"tasks": counts["open"], "overdue": counts["overdue"], "proposals": proposals}


def portal(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None:
        return {}
    context: dict[str, Any] = {"nav_items": _nav(user), "in_clinic": False}
    if user.is_authenticated:
        from apps.notifications.services import unread_count

        context["unread_count"] = unread_count(user)
        if user.is_patient or user.is_clinician:
            from apps.messaging.services.threads import unread_thread_count

            # One query, and only on pages that show the navigation.
            context["messaging_unread"] = SimpleLazyObject(lambda: unread_thread_count(user))
        context["in_clinic"] = user.is_staff_member
        # The home pages' billing card; lazy: one query, only where a page shows it.
        context["billing_card"] = SimpleLazyObject(lambda: _billing_card(user))
        if user.is_clinician:
            # The clinic home's care card; lazy: two queries, only where a page shows it.
            context["care_card"] = SimpleLazyObject(lambda: _care_card(user))
        if user.is_staff_member:
            context["idle_timeout"] = settings.STAFF_IDLE_TIMEOUT
    return context
