"""REST API of the record (`/api/v1/patients/`): every object through the permission gate.

The standard interface for integrators is FHIR (`/fhir/`); this API serves the portals' own
scripts and simple clients.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from .access import Level, get_patient_for_user, patients_for_user
from .models import Observation, Patient
from .serializers import ObservationSerializer, PatientSerializer


class Pages(PageNumberPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


class PatientViewSet(viewsets.ReadOnlyModelViewSet[Patient]):
    """Patients of the caller's care teams; a patient sees only themself."""

    serializer_class = PatientSerializer
    pagination_class = Pages

    def get_queryset(self) -> QuerySet[Patient]:
        if getattr(self, "swagger_fake_view", False):
            return Patient.objects.none()
        user: Any = self.request.user
        if user.is_patient:
            return Patient.objects.filter(user=user)
        return patients_for_user(user).order_by("family_name", "given_names")

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        access = get_patient_for_user(
            request.user,  # type: ignore[arg-type]
            kwargs["pk"],
            request=request._request,
            need=Level.ADMINISTRATIVE,
            what="api-patient",
        )
        return Response(PatientSerializer(access.patient).data)

    @action(detail=True, methods=["get"])
    def observations(self, request: Request, pk: str) -> Response:
        access = get_patient_for_user(
            request.user,  # type: ignore[arg-type]
            pk,
            request=request._request,
            what="api-observations",
        )
        queryset = access.visible(Observation.objects.select_related("code")).order_by(
            "-effective_at"
        )
        code = request.query_params.get("code")
        if code:
            queryset = queryset.filter(code__code=code)
        paginator = Pages()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(ObservationSerializer(page, many=True).data)
