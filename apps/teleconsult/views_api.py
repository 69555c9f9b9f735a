"""The JSON endpoints of a consultation room: chat, consent, recording, snapshots, guests.

Thin views: each resolves the visitor's membership of the room (`rooms.get_room_for_user`,
404 and an audit row for anybody else), calls one service and answers JSON. Errors are
`{"error": message}` with 400 (bad input), 404 (not allowed, not found), 409 (the room's state
forbids it now) or 413 (too large). POSTs are CSRF-protected (header `X-CSRFToken`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from apps.accounts.models import User
from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit

from .models import GuestInvite
from .services import ConsultError
from .services.chat import (
    do_post_message,
    get_chat_file_for_user,
    list_messages,
    message_json,
)
from .services.errors import Conflict, NotAllowed, TooLarge
from .services.guests import do_invite, do_revoke
from .services.recording import (
    CONTENT_TYPES,
    do_add_chunk,
    do_set_consent,
    do_start_recording,
    do_stop_recording,
    open_recording,
)
from .services.rooms import GUEST_SESSION_KEY, Member, get_room_for_user
from .services.snapshots import do_save_snapshot

ApiView = Callable[..., HttpResponse]
R = TypeVar("R", HttpResponse, StreamingHttpResponse)


def _user(request: HttpRequest) -> User | None:
    user = request.user
    return user if user.is_authenticated else None  # type: ignore[return-value]


def _member(request: HttpRequest, room: str, *, read: bool = False) -> Member:
    """The visitor's seat in the room. Reads are audited here; writes by their service."""
    return get_room_for_user(
        _user(request),
        room,
        guest_id=request.session.get(GUEST_SESSION_KEY),
        request=request,
        action=Action.READ if read else None,
    )


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _status(refusal: ConsultError) -> int:
    if isinstance(refusal, NotAllowed):
        return 404
    if isinstance(refusal, Conflict):
        return 409
    if isinstance(refusal, TooLarge):
        return 413
    return 400


def api(*methods: str) -> Callable[[ApiView], ApiView]:
    """JSON errors for a room endpoint; only `methods` are answered (405 otherwise)."""

    def decorate(view: ApiView) -> ApiView:
        @wraps(view)
        def wrapper(request: HttpRequest, room: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(_("This method is not allowed here."), 405)
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, room, *args, **kwargs)
            except Http404:
                return error(_("Not found."), 404)
            except ConsultError as refusal:
                if isinstance(refusal, NotAllowed):
                    audit(
                        Action.DENIED,
                        request=request,
                        object_type="teleconsult.consultation",
                        object_id=str(room)[:40],
                        outcome=Outcome.DENIED,
                        detail={"what": view.__name__},
                    )
                return error(str(refusal), _status(refusal))

        return wrapper

    return decorate


# ---------------------------------------------------------------------------------------------
# Chat


@api("GET", "POST")
def chat(request: HttpRequest, room: str) -> HttpResponse:
    """GET: the chat so far. POST (multipart `text`, optional `file`): a new line, 201."""
    if request.method == "GET":
        member = _member(request, room, read=True)
        return JsonResponse({"messages": list_messages(member)})
    member = _member(request, room)
    message = do_post_message(
        member, request.POST.get("text", ""), request.FILES.get("file"), request=request
    )
    return JsonResponse(message_json(message, member.consultation.room), status=201)


@api("GET")
def chat_file(request: HttpRequest, room: str, message_id: int) -> HttpResponse:
    """A chat file, decrypted, as a download."""
    message, content = get_chat_file_for_user(
        _user(request),
        room,
        message_id,
        guest_id=request.session.get(GUEST_SESSION_KEY),
        request=request,
    )
    response = HttpResponse(content, content_type=message.content_type)
    return _download_headers(response, message.filename or "file")


def _download_headers(response: R, filename: str) -> R:
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store, private"
    # Even if a browser were to render it, nothing in it may run or load anything.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# ---------------------------------------------------------------------------------------------
# Consent and recording


@api("POST")
def consent(request: HttpRequest, room: str) -> HttpResponse:
    """Form `given=1|0`: the visitor's own consent to recording; the room's recording state."""
    given = request.POST.get("given")
    if given not in ("1", "0"):
        return error(_("Say whether you consent: given=1 or given=0."), 400)
    member = _member(request, room)
    return JsonResponse(do_set_consent(member, given == "1", request=request))


@api("POST")
def recording_start(request: HttpRequest, room: str) -> HttpResponse:
    """A clinician starts recording (409 without the consents); where to send the chunks."""
    member = _member(request, room)
    recording = do_start_recording(
        member,
        content_type=request.POST.get("content_type") or "video/webm",
        request=request,
    )
    args = [member.consultation.room, recording.pk]
    return JsonResponse(
        {
            "id": recording.pk,
            "chunk_url": reverse("teleconsult:recording_chunks", args=args),
            "stop_url": reverse("teleconsult:recording_stop", args=args),
        },
        status=201,
    )


def _body(request: HttpRequest, limit: int) -> bytes:
    """The raw body, read up to `limit + 1` bytes (Django's in-memory cap does not apply)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(_("A recording chunk may hold at most %(n)s bytes.") % {"n": limit})
    return request.read(limit + 1)


@api("POST")
def recording_chunk(request: HttpRequest, room: str, recording_id: int, seq: int) -> HttpResponse:
    """Raw body (WebM, or MP4 from Safari): piece `seq` of the recording; 204."""
    member = _member(request, room)
    data = _body(request, settings.TELECONSULT_RECORDING_CHUNK_BYTES)
    do_add_chunk(member, recording_id, seq, data, content_type=request.content_type or "")
    return HttpResponse(status=204)


@api("POST")
def recording_stop(request: HttpRequest, room: str, recording_id: int) -> HttpResponse:
    member = _member(request, room)
    recording = do_stop_recording(member, recording_id, request=request)
    return JsonResponse({"id": recording.pk, "size": recording.size, "chunks": recording.chunks})


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Hand the decrypted chunks to an ASGI server one at a time (never the whole file)."""
    while (chunk := await sync_to_async(_next, thread_sensitive=False)(chunks)) is not None:
        yield chunk


@require_GET
def recording_download(request: HttpRequest, recording_id: int) -> StreamingHttpResponse:
    """A recording, decrypted and streamed, for the patient and their clinical staff."""
    recording, chunks = open_recording(_user(request), recording_id, request)
    content: Any = _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=recording.content_type)
    response["Content-Length"] = str(recording.size)
    day = timezone.localtime(recording.started_at).strftime("%Y-%m-%d")
    extension = CONTENT_TYPES.get(recording.content_type, ".webm")
    _download_headers(response, f"consultation-{day}-{recording.pk}{extension}")
    return response


# ---------------------------------------------------------------------------------------------
# Snapshots and guests


@api("POST")
def snapshot(request: HttpRequest, room: str) -> HttpResponse:
    """Multipart `image` (PNG) and `title`: the annotated snapshot saved to the record; 201."""
    member = _member(request, room)
    image = request.FILES.get("image")
    if image is None:
        return error(_("Attach the snapshot as a PNG picture."), 400)
    document = do_save_snapshot(member, image, request.POST.get("title", ""), request=request)
    url = reverse("records:document_download", args=[document.pk])
    return JsonResponse({"document_url": url}, status=201)


def _invite_json(request: HttpRequest, invite: GuestInvite, token: str) -> dict[str, Any]:
    return {
        "id": invite.pk,
        "url": request.build_absolute_uri(reverse("teleconsult:join", args=[token])),
        "expires_at": invite.expires_at.isoformat(),
    }


@api("POST")
def invites(request: HttpRequest, room: str) -> HttpResponse:
    """Form `name`, `relation`: a guest link (the token is in it, shown only this once); 201."""
    member = _member(request, room)
    invite, token = do_invite(
        member, request.POST.get("name", ""), request.POST.get("relation", ""), request=request
    )
    return JsonResponse(_invite_json(request, invite, token), status=201)


@api("POST")
def invite_revoke(request: HttpRequest, room: str, invite_id: int) -> HttpResponse:
    member = _member(request, room)
    invite = do_revoke(member, invite_id, request=request)
    revoked_at = invite.revoked_at.isoformat() if invite.revoked_at is not None else None
    return JsonResponse({"id": invite.pk, "revoked_at": revoked_at})
