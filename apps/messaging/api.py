"""REST API of secure messaging (`/api/v1/threads/`, `/api/v1/messaging/…`).

Every conversation goes through the messaging gate (`apps.messaging.access`): a patient sees
their own conversations (never the staff-only ones), clinicians those of the patients whose care
team they are on; anyone else gets 404 and the refusal is audited. Reading a conversation is
audited and moves the caller's read marker; a change the services refuse answers 400
`{"detail": message}`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Role, User
from apps.audit.models import Action
from apps.core.crypto import DecryptionError
from apps.records.access import deny, patients_for_user
from apps.records.api import Pages
from apps.records.models import Patient

from .access import (
    ThreadAccess,
    audit_listing,
    get_attachment_for_user,
    get_thread_for_user,
    threads_for_user,
)
from .models import Attachment, Message, Thread
from .serializers import (
    AssignSerializer,
    ErrorSerializer,
    MessageInSerializer,
    MessageSerializer,
    ThreadDetailSerializer,
    ThreadInSerializer,
    ThreadQuerySerializer,
    ThreadSerializer,
    UnreadSerializer,
    UrgencySerializer,
)
from .services import MessagingError
from .services.attachments import open_attachment
from .services.threads import (
    do_mark_read,
    do_post_message,
    do_start_thread,
    patient_read_at,
    team_read_at,
    unread_thread_count,
    unread_threads,
)
from .services.triage import (
    do_assign,
    do_reopen,
    do_resolve,
    do_set_urgency,
)

logger = logging.getLogger(__name__)

NOT_FOUND = OpenApiResponse(description="No such conversation, or not yours to see (audited).")
REFUSED = OpenApiResponse(ErrorSerializer, description="Not possible; `detail` says why.")
WRITE = {"application/json": MessageInSerializer, "multipart/form-data": MessageInSerializer}


def _refused(error: MessagingError) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)


def _messages(thread: Thread) -> list[Message]:
    """The thread's messages with what their serializer reads (four queries however many)."""
    return list(
        Message.objects.filter(thread=thread)
        .select_related("author")
        .prefetch_related(
            Prefetch("attachments", queryset=Attachment.objects.order_by("pk")), "mentions"
        )
        .order_by("sent_at", "pk")
    )


class ThreadViewSet(viewsets.GenericViewSet[Thread]):
    """Conversations: list, start, read, answer, mark read; the team triages them."""

    serializer_class = ThreadSerializer
    pagination_class = Pages
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[Thread]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Thread.objects.none()
        return threads_for_user(self._user()).select_related("patient", "assignee")

    def _user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    def _access(self, pk: str, *, what: str, audited: bool = False) -> ThreadAccess:
        """The gate; `audited` for reads (writers' services audit their change themselves)."""
        return get_thread_for_user(
            self._user(),
            pk,
            request=self.request._request,
            what=what,
            action=Action.READ if audited else None,
        )

    def _row(self, thread: Thread, *, code: int = status.HTTP_200_OK) -> Response:
        user = self._user()
        thread = self.get_queryset().get(pk=thread.pk)
        unread = set(unread_threads(user).filter(pk=thread.pk).values_list("pk", flat=True))
        data = ThreadSerializer(thread, context={"user": user, "unread": unread}).data
        return Response(data, status=code)

    def _detail(self, thread: Thread, *, code: int = status.HTTP_200_OK) -> Response:
        user = self._user()
        thread = self.get_queryset().get(pk=thread.pk)
        context = {
            "user": user,
            "unread": set(unread_threads(user).filter(pk=thread.pk).values_list("pk", flat=True)),
            "messages": _messages(thread),
            "team_read_at": team_read_at(thread),
            "patient_read_at": None if thread.staff_only else patient_read_at(thread),
        }
        headers = {}
        if code == status.HTTP_201_CREATED:
            headers["Location"] = reverse("api:thread-detail", args=[thread.pk])
        return Response(ThreadDetailSerializer(thread, context=context).data, code, headers=headers)

    # -- the inbox ------------------------------------------------------------------------------

    @extend_schema(
        parameters=[ThreadQuerySerializer],
        responses={200: ThreadSerializer(many=True), 404: NOT_FOUND},
        description=(
            "The caller's conversations, latest activity first: a patient's own; for a "
            "clinician, those of the patients of their care teams (staff-only discussions "
            "included). `assigned=me` or `none` filters by assignee; `patient` names one "
            "patient (404, audited, if not theirs)."
        ),
    )
    def list(self, request: Request) -> Response:
        query = ThreadQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        user = self._user()
        threads = self.get_queryset()
        if "patient" in params:
            self._check_patient(params["patient"])
            threads = threads.filter(patient_id=params["patient"])
        if "state" in params:
            threads = threads.filter(state=params["state"])
        if "urgency" in params:
            threads = threads.filter(urgency=params["urgency"])
        if params.get("assigned") == "me":
            threads = threads.filter(assignee=user)
        elif params.get("assigned") == "none":
            threads = threads.filter(assignee__isnull=True)
        page = self.paginate_queryset(threads)
        assert page is not None  # noqa: S101 - Pages always pages
        audit_listing(user, page, request=request._request, what="api-threads")
        ids = [thread.pk for thread in page]
        unread = set(unread_threads(user).filter(pk__in=ids).values_list("pk", flat=True))
        data = ThreadSerializer(page, many=True, context={"user": user, "unread": unread}).data
        return self.get_paginated_response(data)

    def _check_patient(self, patient_id: int) -> None:
        """Someone else's patient is a 404, audited like every refusal."""
        user = self._user()
        if user.role == Role.PATIENT:
            mine = Patient.objects.filter(pk=patient_id, user=user).exists()
        else:
            mine = patients_for_user(user).filter(pk=patient_id).exists()
        if not mine:
            raise deny(
                user,
                request=self.request._request,
                what="api-threads",
                object_id=patient_id,
                patient_id=patient_id,
            )

    @extend_schema(
        request={"application/json": ThreadInSerializer, "multipart/form-data": ThreadInSerializer},
        responses={
            201: ThreadDetailSerializer,
            400: REFUSED,
            404: OpenApiResponse(description="Not a patient of the caller's care team (audited)."),
        },
        description=(
            "Start a conversation with its first message. A patient writes to their care team "
            "(`patient` is ignored); a clinician of the patient's care team names the "
            "`patient` and writes to them (a patient topic) or starts a staff-only discussion "
            "(case, handover). Files go as multipart/form-data `files`."
        ),
    )
    def create(self, request: Request) -> Response:
        form = ThreadInSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = self._user()
        if user.role != Role.PATIENT and data.get("patient") is None:
            raise ValidationError({"patient": [_("Choose the patient.")]})
        try:
            thread = do_start_thread(
                user,
                topic=data["topic"],
                subject=data["subject"],
                body=data["body"],
                files=data["files"],
                patient_id=data.get("patient"),
                mention_ids=data["mentions"],
                request=request._request,
            )
        except MessagingError as error:
            return _refused(error)
        return self._detail(thread, code=status.HTTP_201_CREATED)

    # -- one conversation -----------------------------------------------------------------------

    @extend_schema(
        responses={200: ThreadDetailSerializer, 404: NOT_FOUND},
        description=(
            "The conversation with its messages (files as download links) and read receipts. "
            "Reading it is audited and marks it read for the caller."
        ),
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-thread", audited=True)
        do_mark_read(access, request=request._request)
        return self._detail(access.thread)

    @extend_schema(
        request=WRITE,
        responses={201: MessageSerializer, 400: REFUSED, 404: NOT_FOUND},
        description=(
            "Answer: `body` (plain text), `mentions` (the team: colleagues of the care team) "
            "and, as multipart/form-data, `files`. A patient's message reopens a resolved "
            "conversation; outside opening hours the first one gets an automatic reply."
        ),
    )
    @action(detail=True, methods=["post"])
    def messages(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-message")
        form = MessageInSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            message = do_post_message(
                access,
                body=data["body"],
                files=data["files"],
                mention_ids=data["mentions"],
                request=request._request,
            )
        except MessagingError as error:
            return _refused(error)
        saved = [m for m in _messages(access.thread) if m.pk == message.pk]
        return Response(MessageSerializer(saved[0]).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: UnreadSerializer, 404: NOT_FOUND},
        description="Mark read for the caller; answers their number of unread conversations.",
    )
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-read")
        do_mark_read(access, request=request._request)
        return Response({"threads": unread_thread_count(self._user())})

    # -- triage (the team) ----------------------------------------------------------------------

    @extend_schema(
        request=AssignSerializer,
        responses={200: ThreadSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Assign to a clinician of the patient's care team, or to nobody (null).",
    )
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-assign")
        form = AssignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._triage(
            lambda: do_assign(access, form.validated_data["assignee"], request=request._request)
        )

    @extend_schema(
        request=UrgencySerializer,
        responses={200: ThreadSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Mark routine or urgent (the team only).",
    )
    @action(detail=True, methods=["post"])
    def urgency(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-urgency")
        form = UrgencySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._triage(
            lambda: do_set_urgency(access, form.validated_data["urgency"], request=request._request)
        )

    @extend_schema(
        request=None,
        responses={200: ThreadSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Resolve: nothing more to do (a new message from the patient reopens it).",
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-resolve")
        return self._triage(lambda: do_resolve(access, request=request._request))

    @extend_schema(
        request=None,
        responses={200: ThreadSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Reopen a resolved conversation (the team only).",
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str) -> Response:
        access = self._access(pk, what="api-reopen")
        return self._triage(lambda: do_reopen(access, request=request._request))

    def _triage(self, change: Any) -> Response:
        try:
            thread = change()
        except MessagingError as error:
            return _refused(error)
        return self._row(thread)


@extend_schema(
    responses={200: UnreadSerializer},
    description="How many conversations the caller has unread (the navigation badge).",
)
@api_view(["GET"])
def unread(request: Request) -> Response:
    return Response({"threads": unread_thread_count(request.user)})  # type: ignore[arg-type]


@extend_schema(
    parameters=[
        OpenApiParameter("thumb", OpenApiTypes.BOOL, description="The picture's small preview.")
    ],
    responses={
        (200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The file, with its own content type."
        ),
        404: OpenApiResponse(description="No such file, or not yours to see (audited)."),
    },
    description="A file of a message, decrypted (every download is audited).",
)
@api_view(["GET"])
def attachment_file(request: Request, pk: int) -> HttpResponse:
    attachment, _access = get_attachment_for_user(
        request.user,  # type: ignore[arg-type]
        pk,
        request=request._request,
    )
    thumbnail = request.query_params.get("thumb") in ("1", "true")
    try:
        content = open_attachment(attachment, thumbnail=thumbnail)
    except (FileNotFoundError, DecryptionError):
        logger.exception("attachment %s: stored file missing or unreadable", attachment.pk)
        return HttpResponse(status=status.HTTP_404_NOT_FOUND)
    content_type = "image/jpeg" if thumbnail else attachment.content_type
    response = HttpResponse(content, content_type=content_type)
    disposition = content_disposition_header(not attachment.is_image, attachment.filename)
    response["Content-Disposition"] = disposition or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store, private"
    # Even if a browser were to render it, nothing in it may run or load anything.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
