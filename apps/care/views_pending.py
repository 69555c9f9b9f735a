"""TEMPORARY during the build: routes the navigation needs before each area's page exists.
Deleted once every area has its views (the lead checks)."""

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse


def pending(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    raise Http404()
