from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.typing import AuthedRequest

from . import services
from .models import Notification


@login_required
def inbox(request: AuthedRequest) -> HttpResponse:
    queryset = Notification.objects.filter(user=request.user).only(
        "id", "kind", "title", "body", "link", "created_at", "read_at"
    )
    page = Paginator(queryset, 20).get_page(request.GET.get("page"))
    return render(request, "notifications/inbox.html", {"page": page})


@login_required
def item(request: AuthedRequest, notification_id: int) -> HttpResponse:
    """One inbox entry, rendered for the live update (static/js/realtime.js)."""
    notification = services.get_notification_for_user(request.user, notification_id)
    return render(request, "notifications/_item.html", {"notification": notification})


@login_required
@require_POST
def mark_read(request: AuthedRequest, notification_id: int) -> HttpResponse:
    services.do_mark_read(request.user, notification_id)
    notification = services.get_notification_for_user(request.user, notification_id)
    if request.headers.get("HX-Request"):
        return render(request, "notifications/_item.html", {"notification": notification})
    link = notification.link
    return redirect(link if url_has_allowed_host_and_scheme(link, None) else "notifications:inbox")


@login_required
@require_POST
def mark_all_read(request: AuthedRequest) -> HttpResponse:
    services.do_mark_read(request.user)
    return redirect("notifications:inbox")


@login_required
def preferences(request: AuthedRequest) -> HttpResponse:
    rows = services.preferences_for(request.user)
    if request.method == "POST":
        choices = {
            kind.code: (
                request.POST.get(f"{kind.code}:email") == "on",
                request.POST.get(f"{kind.code}:sms") == "on",
            )
            for kind, _email, _sms in rows
        }
        services.set_preferences(request.user, choices)
        messages.success(request, _("Your notification settings are saved."))
        return redirect("notifications:preferences")
    return render(
        request,
        "notifications/preferences.html",
        {"rows": rows, "has_phone": bool(request.user.phone)},
    )
