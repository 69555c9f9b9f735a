from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from apps.accounts.decorators import staff_required
from apps.accounts.typing import AuthedRequest
from apps.notifications.models import Notification

from .health import run_checks


def home(request: HttpRequest) -> HttpResponse:
    """The patient portal's home; staff go to the practitioner portal, visitors see the welcome."""
    user = request.user
    if not user.is_authenticated:
        return render(request, "core/landing.html")
    if user.is_staff_member:
        return redirect("clinic_home")
    latest = Notification.objects.filter(user_id=user.pk)[:5]
    return render(request, "core/portal_home.html", {"latest": latest})


@staff_required
def clinic_home(request: AuthedRequest) -> HttpResponse:
    latest = Notification.objects.filter(user=request.user)[:5]
    return render(request, "core/clinic_home.html", {"latest": latest})


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    checks = run_checks()
    failing = [name for name, result in checks.items() if result != "ok"]
    return JsonResponse(
        {"status": "fail" if failing else "ok", "failing": failing, "checks": checks},
        status=503 if failing else 200,
    )
