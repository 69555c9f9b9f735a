"""Pages of a video consultation: device check, the entry points, the call page, its end, the note.

Every page that shows a consultation asks `services.rooms.get_room_for_user` (audited; 404 for
anyone who is not its patient, a participating clinician or a guest holding a redeemed link).
The call itself runs in the browser (static/js/consult.js) against the signalling socket and
the JSON endpoints of views_api.py; these views render the page and change state only through
the services.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.records.access import deny
from apps.records.models import ClinicalNote
from apps.records.services import RecordError
from apps.records.services.clinical import do_write_note
from apps.scheduling.models import Appointment
from apps.scheduling.services.booking import get_appointment_for_user

from .forms import ConsultationNoteForm, UrgentRoomForm, safe_next
from .models import Consultation, GuestInvite, RecordingConsent
from .services import ConsultError
from .services.guests import peek, redeem
from .services.ice import ice_servers
from .services.recording import recording_state
from .services.rooms import (
    GUEST_SESSION_KEY,
    Member,
    do_end_call,
    do_open_adhoc_room,
    get_room_for_user,
    patient_may_enter_now,
    room_for_appointment,
)
from .views_strings import call_strings, check_strings


def _user(request: HttpRequest) -> User | None:
    user = request.user
    return user if user.is_authenticated else None  # type: ignore[return-value]


def _guest_id(request: HttpRequest) -> Any:
    return request.session.get(GUEST_SESSION_KEY)


def room_member(request: HttpRequest, room: str, *, action: str | None = "read") -> Member:
    """The member the visitor is in the room (audited), or Http404 (audited)."""
    return get_room_for_user(
        _user(request), room, guest_id=_guest_id(request), request=request, action=action
    )


def _clinician(request: HttpRequest, room: str, what: str) -> Member:
    """A clinician of the room for a state change (audited by the service that changes it)."""
    member = room_member(request, room, action=None)
    if not member.is_clinician:
        raise deny(
            member.user or User(),
            request=request,
            what=what,
            object_type="teleconsult.consultation",
            object_id=room,
            patient_id=member.consultation.patient_id,
        )
    return member


def _room_url(consultation: Consultation) -> str:
    return reverse("teleconsult:room", args=[consultation.room])


# ---------------------------------------------------------------------------------------------
# Before the call


@require_GET
def device_check(request: HttpRequest) -> HttpResponse:
    """Camera, microphone and connection check; for anyone signed in or holding a guest link."""
    user = _user(request)
    if user is None and _guest_id(request) is None:
        return redirect_to_login(request.get_full_path())
    who = f"u{user.pk}" if user is not None else f"g{_guest_id(request)}"
    context = {
        "next_url": safe_next(request.GET.get("next"), request.get_host()),
        "check_config": _check_config(who),
    }
    return render(request, "teleconsult/check.html", context)


def _check_config(who: str) -> dict[str, Any]:
    return {
        "ice_servers": ice_servers(who),
        "ping_url": reverse("healthz"),
        "strings": check_strings(),
    }


@login_required
@require_GET
def join_appointment(request: HttpRequest, pk: int) -> HttpResponse:
    """From a video appointment to its room (created on first use)."""
    user: User = request.user  # type: ignore[assignment]
    # The appointment's patient or care team may see it; the room then admits only its
    # patient and participating clinicians (checked by get_room_for_user below).
    appointment, _access = get_appointment_for_user(user, pk, request=request, action=None)
    try:
        consultation = room_for_appointment(appointment)
    except ConsultError as refused:
        messages.error(request, str(refused))
        return redirect("scheduling:appointment", pk=appointment.pk)
    if user.is_patient and not consultation.is_closed:
        if not patient_may_enter_now(consultation):
            messages.info(request, _opens_at_message(appointment))
            return redirect("scheduling:appointment", pk=appointment.pk)
    member = room_member(request, consultation.room, action=None)
    return redirect(_room_url(member.consultation))


def _opens_at_message(appointment: Appointment) -> str:
    opens = appointment.starts_at - dt.timedelta(minutes=settings.TELECONSULT_EARLY_MINUTES)
    if timezone.now() < opens:
        return _("The waiting room opens at %(time)s.") % {
            "time": date_format(timezone.localtime(opens), "H:i")
        }
    return _("This video consultation is over.")


@login_required
@require_POST
def open_urgent_room(request: HttpRequest, patient_pk: int) -> HttpResponse:
    """A clinician of the patient's care team opens an urgent video room and goes into it
    (the service checks the access and calls the patient)."""
    user: User = request.user  # type: ignore[assignment]
    form = UrgentRoomForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    consultation = do_open_adhoc_room(user, patient_pk, reason=reason, request=request)
    return redirect(_room_url(consultation))


@require_http_methods(["GET", "POST"])
def guest_join(request: HttpRequest, token: str) -> HttpResponse:
    """A guest's invitation link. GET shows it (link previews must not use it up); the Join
    button (POST) binds it to this browser, then the device check leads to the room."""
    if request.method == "POST":
        invite = redeem(token, request)  # audited either way
        bound = invite is not None
    else:
        invite, bound = peek(token, request)
    if invite is None:
        raise Http404
    context = {
        "invite": invite,
        "bound": bound,
        "room_url": reverse("teleconsult:room", args=[invite.consultation.room]),
        "check_config": _check_config(f"g{invite.pk}"),
    }
    return render(request, "teleconsult/guest_join.html", context)


# ---------------------------------------------------------------------------------------------
# The call


@require_GET
def room_page(request: HttpRequest, room: str) -> HttpResponse:
    """The call page, the same for every seat; before admission it is the waiting room."""
    if _user(request) is None and _guest_id(request) is None:
        return redirect_to_login(request.get_full_path())
    member = room_member(request, room)
    consultation = member.consultation
    recording = _recording_state(member)
    context: dict[str, Any] = {
        "member": member,
        "consultation": consultation,
        "patient": consultation.patient,
        "appointment": consultation.appointment,
        "config": _call_config(request, member, recording),
        "consents": recording["consents"],
        "recording": recording["recording"],
        "relations": _relations(),
        "staff_room": consultation.is_staff_room,
        "back_url": _back_url(member),
    }
    if member.is_clinician and member.access is not None:
        context["note_form"] = _note_form(member)
        context["note_url"] = reverse("teleconsult:note", args=[room])
        context["chart_url"] = reverse("records:chart", args=[consultation.patient_id])
        context["prescription_url"] = reverse(
            "records:prescription_new", args=[consultation.patient_id]
        )
    return render(request, "teleconsult/room.html", context)


def _back_url(member: Member) -> str:
    """Where "Back" leads once the call is over."""
    if member.is_patient:
        return reverse("scheduling:my_appointments")
    if member.consultation.is_staff_room:
        # A staff room belongs to a multidisciplinary meeting (apps.care links it).
        meeting_id = getattr(getattr(member.consultation, "meeting", None), "pk", None)
        if meeting_id is not None:
            return reverse("care:meeting", args=[meeting_id])
        return reverse("care:meetings")
    return reverse("teleconsult:consultations")


def _relations() -> list[tuple[str, str]]:
    return [(str(value), str(label)) for value, label in GuestInvite.Relation.choices]


def _recording_state(member: Member) -> dict[str, Any]:
    """Consents and the recording in progress, plus whether this person consents themself."""
    found = recording_state(member.consultation)
    found["mine"] = (
        member.user is not None
        and RecordingConsent.objects.filter(
            consultation=member.consultation, user=member.user, withdrawn_at__isnull=True
        ).exists()
    )
    return found


def _call_config(request: HttpRequest, member: Member, recording: dict[str, Any]) -> dict[str, Any]:
    """What consult.js needs: who I am, where to talk, the endpoints, the words to show."""
    room = member.consultation.room
    base = reverse("teleconsult:room", args=[room])
    return {
        "room": room,
        "me": {"key": member.key, "seat": member.seat, "name": member.display_name},
        "socket": f"/ws/consult/{room}/",
        "csrf": get_token(request),
        "urls": {
            "chat": base + "chat/",
            "consent": base + "consent/",
            "recordings": base + "recordings/",
            "snapshot": base + "snapshot/",
            "invites": base + "invites/",
            "summary": reverse("teleconsult:summary", args=[room]),
            "check": reverse("teleconsult:check") + f"?next={base}",
            "home": reverse("home"),
        },
        "recording": {
            "consents": recording["consents"],
            "current": recording["recording"],
            "mine": recording["mine"],
            "timeslice": 5000,
            # Chunks of five seconds stay well under the server's limit per chunk.
            "bits_per_second": min(2_500_000, settings.TELECONSULT_RECORDING_CHUNK_BYTES // 8),
        },
        "strings": call_strings(),
    }


def _note_form(member: Member, data: Any = None) -> ConsultationNoteForm:
    consultation = member.consultation
    moment = consultation.started_at or consultation.created_at
    title = _("Video consultation of %(date)s") % {
        "date": date_format(timezone.localtime(moment), "SHORT_DATE_FORMAT")
    }
    # Clinicians always come with their record access; without it, no category is offered.
    allowed = member.access.sensitivities if member.access is not None else frozenset[str]()
    return ConsultationNoteForm(data, allowed=allowed, initial={"title": title})


@require_POST
def end_call(request: HttpRequest, room: str) -> HttpResponse:
    """A clinician ends the consultation for everyone; then its summary."""
    member = _clinician(request, room, "consultation-end")
    do_end_call(member, request=request)
    return redirect("teleconsult:summary", room=room)


@require_POST
def write_note(request: HttpRequest, room: str) -> HttpResponse:
    """The consultation note, signed, linked to the consultation's Encounter (htmx fragment)."""
    member = _clinician(request, room, "consultation-note")
    form = _note_form(member, request.POST)
    saved: ClinicalNote | None = None
    if form.is_valid():
        try:
            saved = _write_linked_note(request, member, form.cleaned_data)
        except RecordError as error:
            form.add_error(None, str(error))
    if not request.headers.get("HX-Request"):
        if saved is not None:
            messages.success(request, _("The note is signed and saved."))
        else:
            problems = [str(m) for errors in form.errors.values() for m in errors]
            messages.error(request, " ".join(problems))
        return redirect(_room_url(member.consultation))
    context = {
        "note_form": _note_form(member) if saved is not None else form,
        "note_url": reverse("teleconsult:note", args=[room]),
        "saved": saved,
    }
    status = 400 if form.errors else 200
    return render(request, "teleconsult/_note_form.html", context, status=status)


@transaction.atomic
def _write_linked_note(request: HttpRequest, member: Member, data: dict[str, Any]) -> ClinicalNote:
    if member.access is None or member.user is None:  # a clinician always has both
        raise RecordError(_("Only a clinician of the consultation may write its note."))
    encounter_id = (
        Consultation.objects.filter(pk=member.consultation.pk)
        .values_list("encounter_id", flat=True)
        .first()
    )
    return do_write_note(
        member.access, member.user, **data, encounter_id=encounter_id, request=request
    )
