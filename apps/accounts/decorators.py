from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Signed-in staff only; anyone else gets 404 (the second factor is the middleware's job)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff_member:  # type: ignore[union-attr]
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def patient_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_patient:  # type: ignore[union-attr]
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper
