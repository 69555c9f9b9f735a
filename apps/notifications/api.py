from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from . import services
from .models import Notification
from .serializers import NotificationSerializer


class NotificationViewSet(viewsets.ReadOnlyModelViewSet[Notification]):
    """The caller's own notifications, newest first."""

    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Notification.objects.none()
        queryset = Notification.objects.filter(user=self.request.user)  # type: ignore[misc]
        if self.request.query_params.get("unread") in ("1", "true"):
            queryset = queryset.filter(read_at__isnull=True)
        return queryset

    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        count = services.do_mark_read(request.user, int(pk))  # type: ignore[arg-type]
        return Response({"unread_count": count})

    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        return Response({"unread_count": services.do_mark_read(request.user)})  # type: ignore[arg-type]
