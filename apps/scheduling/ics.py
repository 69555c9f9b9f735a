"""iCalendar (RFC 5545) for appointments: one event as a file, or a person's private feed.

Built with the `icalendar` library. Times are written in UTC, so every calendar shows the right
instant whatever its zone and across daylight-saving changes. An event says what, when, where
and with whom, never why: the reason for the visit and other clinical details stay in the
portal, since a calendar is synced to phones and third-party services.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Prefetch, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from apps.accounts.models import User

from .models import Appointment, Participant

FEED_PAST_DAYS = 30
FEED_FUTURE_DAYS = 366
CANCELLED = (Appointment.Status.CANCELLED,)


def site_host() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def event_uid(appointment: Appointment) -> str:
    """Stable across changes, so calendars update (or remove) the event instead of adding one."""
    return f"appointment-{appointment.fhir_id}@{site_host()}"


def _clinicians(appointment: Appointment) -> list[str]:
    # Uses the prefetched participants when the caller prefetched them.
    return [
        participant.user.get_full_name()
        for participant in sorted(
            appointment.participants.all(), key=lambda p: (p.role != "primary", p.pk)
        )
    ]


def place_of(appointment: Appointment) -> str:
    if appointment.mode == "video" or appointment.location is None:
        return _("Video")
    location = appointment.location
    address = " ".join(location.address.split())
    return f"{location.name}, {address}" if address else location.name


def _event(appointment: Appointment, for_user: User, stamp: dt.datetime) -> Event:
    with_whom = (
        ", ".join(_clinicians(appointment))
        if for_user.is_patient
        else appointment.patient.full_name
    )
    summary = appointment.type.label
    if with_whom:
        summary = f"{summary} — {with_whom}"
    event = Event()
    event.add("uid", event_uid(appointment))
    event.add("dtstamp", stamp)
    event.add("dtstart", appointment.starts_at.astimezone(dt.UTC))
    event.add("dtend", appointment.ends_at.astimezone(dt.UTC))
    event.add("summary", summary)
    event.add("location", place_of(appointment))
    event.add("status", "CANCELLED" if appointment.status in CANCELLED else "CONFIRMED")
    # `version` rises at each save; calendars apply the highest sequence they have seen.
    event.add("sequence", appointment.version - 1)
    event.add("url", settings.SITE_URL + reverse("scheduling:appointment", args=[appointment.pk]))
    event.add("transp", "OPAQUE")
    return event


def _calendar(appointments: Iterable[Appointment], for_user: User, name: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Virtual hospital//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    # Subscribed calendars poll at most this often (Apple and Outlook read these hints).
    calendar.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    stamp = timezone.now().astimezone(dt.UTC).replace(microsecond=0)
    for appointment in appointments:
        calendar.add_component(_event(appointment, for_user, stamp))
    return calendar.to_ical()


def _with_people() -> Prefetch[str]:
    return Prefetch("participants", queryset=Participant.objects.select_related("user"))


def _language(user: User) -> str:
    return user.preferred_language or settings.LANGUAGE_CODE


def appointment_ics(appointment: Appointment, for_user: User) -> bytes:
    """One appointment as a calendar file, in `for_user`'s language and point of view."""
    appointment = (
        Appointment.objects.select_related("patient", "type", "location")
        .prefetch_related(_with_people())
        .get(pk=appointment.pk)
    )
    with translation.override(_language(for_user)):
        return _calendar([appointment], for_user, _("Appointment"))


def feed_appointments(user: User, now: dt.datetime | None = None) -> list[Appointment]:
    """The user's appointments shown in their feed: a month back to a year ahead.

    Staff: those they take part in; patients: their own. Cancelled ones stay (as cancelled)
    so that subscribed calendars remove them. Two queries.
    """
    now = now or timezone.now()
    window = Q(
        starts_at__gte=now - dt.timedelta(days=FEED_PAST_DAYS),
        starts_at__lt=now + dt.timedelta(days=FEED_FUTURE_DAYS),
    )
    if user.is_patient:
        mine = Q(patient__user=user)
    else:
        mine = Q(pk__in=Participant.objects.filter(user=user).values("appointment_id"))
    return list(
        Appointment.objects.filter(window & mine)
        .exclude(status=Appointment.Status.PROPOSED)
        .select_related("patient", "type", "location")
        .prefetch_related(_with_people())
        .order_by("starts_at", "pk")
    )


def feed_ics(user: User, appointments: list[Appointment] | None = None) -> bytes:
    """The private feed of `user` (see `feed_appointments`)."""
    if appointments is None:
        appointments = feed_appointments(user)
    with translation.override(_language(user)):
        return _calendar(appointments, user, _("My appointments"))
