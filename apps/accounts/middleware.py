"""Session rules: staff idle timeout, and no page behind the login without the second factor."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from .services import do_logout, has_confirmed_totp
from .twofactor import request_satisfies_second_factor

# Reachable before the second factor: signing in and out, setting it up, static files, health.
EXEMPT_PREFIXES = (
    "/accounts/",
    "/static/",
    "/i18n/",
    "/healthz",
    "/readyz",
    "/favicon.ico",
    "/rx/",
)
LAST_SEEN_KEY = "vh_last_seen"
# Requests with this header (background polls) do not count as activity.
PASSIVE_HEADER = "x-vh-passive"


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


class SessionPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            response = self._check_idle(request) or self._check_second_factor(request)
            if response is not None:
                return response
        return self.get_response(request)

    def _check_idle(self, request: HttpRequest) -> HttpResponse | None:
        if not request.user.is_staff_member:  # type: ignore[union-attr]
            return None
        now = time.time()
        last_seen = request.session.get(LAST_SEEN_KEY)
        if last_seen is not None and now - last_seen > settings.STAFF_IDLE_TIMEOUT:
            next_url = request.get_full_path()
            do_logout(request, reason="idle")
            if _wants_json(request):
                return JsonResponse({"detail": _("Session expired after inactivity.")}, status=401)
            messages.info(request, _("You were signed out after a period of inactivity."))
            login_url = reverse("account_login") + "?" + urlencode({"next": next_url})
            return HttpResponseRedirect(login_url)
        passive = request.headers.get(PASSIVE_HEADER) == "1"
        # Writing the session costs a query: refresh the mark at most every 30 seconds.
        if not passive and (last_seen is None or now - last_seen > 30):
            request.session[LAST_SEEN_KEY] = now
        return None

    def _check_second_factor(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.startswith(EXEMPT_PREFIXES):
            return None
        if request_satisfies_second_factor(request):
            return None
        if _wants_json(request):
            return JsonResponse(
                {"detail": _("Two-factor verification is required for this account.")},
                status=403,
            )
        has_totp = has_confirmed_totp(request.user)  # type: ignore[arg-type]
        target = "two_factor_verify" if has_totp else "two_factor_setup"
        return HttpResponseRedirect(
            reverse(target) + "?" + urlencode({"next": request.get_full_path()})
        )
