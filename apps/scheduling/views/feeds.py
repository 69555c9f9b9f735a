"""Calendar pages: the private feed (for calendar apps), its settings, one event as a file."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from apps.accounts.models import User
from apps.audit.models import Action
from apps.core import ratelimit
from apps.core.net import get_client_ip

from ..ics import appointment_ics as build_appointment_ics
from ..ics import feed_appointments, feed_ics
from ..services.booking import get_appointment_for_user
from ..services.feeds import (
    do_create_feed,
    do_revoke_feed,
    feed_user,
    live_feed,
    may_have_feed,
    record_feed_read,
)

# Calendar apps poll every 5 to 60 minutes; this only stops someone guessing tokens.
FEED_RATE = (60, 60)  # requests per window, window in seconds, per client address
SESSION_KEY = "scheduling_new_feed_token"
CALENDAR_TYPE = "text/calendar; charset=utf-8"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _calendar_response(content: bytes, filename: str, *, download: bool) -> HttpResponse:
    response = HttpResponse(content, content_type=CALENDAR_TYPE)
    disposition = "attachment" if download else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


@require_safe
def feed(request: HttpRequest, token: str) -> HttpResponse:
    """The feed a calendar app subscribes to: the token is the only credential (no session)."""
    limit, window = FEED_RATE
    if not ratelimit.hit(f"ics-feed:{get_client_ip(request)}", limit, window):
        response = HttpResponse(status=429)
        response["Retry-After"] = str(window)
        return response
    user = feed_user(token)
    if user is None:
        record_feed_read(None, request=request)
        raise Http404
    appointments = feed_appointments(user)
    record_feed_read(user, appointments, request=request)
    return _calendar_response(feed_ics(user, appointments), "appointments.ics", download=False)


def feed_urls(token: str) -> dict[str, str]:
    https = settings.SITE_URL + reverse("scheduling:feed", args=[token])
    webcal = "webcal://" + https.split("://", 1)[1]
    return {
        "https": https,
        "webcal": webcal,
        "google": "https://calendar.google.com/calendar/r?cid=" + quote(webcal, safe=""),
    }


@login_required
@require_http_methods(["GET", "POST"])
def feed_settings(request: HttpRequest) -> HttpResponse:
    """Create, replace or revoke my private calendar link; the link is shown only once."""
    user = _user(request)
    if not may_have_feed(user):
        raise Http404
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            do_revoke_feed(user, request=request)
        else:
            request.session[SESSION_KEY] = do_create_feed(user, request=request)
        return redirect("scheduling:feed_settings")
    token = request.session.pop(SESSION_KEY, None)
    return render(
        request,
        "scheduling/feed_settings.html",
        {
            "feed": live_feed(user),
            "urls": feed_urls(token) if token else None,
            "in_clinic": user.is_staff_member,
        },
    )


@login_required
@require_GET
def appointment_ics(request: HttpRequest, pk: int) -> HttpResponse:
    """One appointment as an .ics file, for whoever may see the appointment (404 otherwise)."""
    user = _user(request)
    appointment, _access = get_appointment_for_user(user, pk, request=request, action=Action.EXPORT)
    filename = f"appointment-{appointment.starts_at:%Y%m%d}.ics"
    return _calendar_response(build_appointment_ics(appointment, user), filename, download=True)
