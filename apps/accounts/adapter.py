"""Hooks of django-allauth: redirects, client address, audit of logins, logout semantics."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import get_language

from apps.audit.models import Action, Outcome
from apps.audit.services import record
from apps.core.net import get_client_ip

from .services import do_logout, remember_language
from .twofactor import forget_requirement


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: HttpRequest) -> str:
        user = request.user
        if user.is_authenticated and user.is_staff_member:
            return reverse("clinic_home")
        return reverse("home")

    def get_client_ip(self, request: HttpRequest) -> str:
        ip = get_client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            record(
                Action.LOGIN_FAILED,
                request=request,
                outcome=Outcome.DENIED,
                detail={"email": str(credentials.get("email", ""))[:254], "reason": "throttled"},
            )
            raise

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        record(
            Action.LOGIN_FAILED,
            request=request,
            outcome=Outcome.FAILURE,
            detail={"email": str(credentials.get("email", ""))[:254]},
        )

    def post_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse:
        forget_requirement(request.session)
        record(Action.LOGIN, request=request, actor=user, obj=user)
        response = super().post_login(request, user, **kwargs)
        remember_language(response, user.preferred_language)
        return response

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        # A patient who signs up in German keeps German in emails and on later visits.
        language = get_language() or settings.LANGUAGE_CODE
        user.preferred_language = language.split("-")[0]
        return super().save_user(request, user, form, commit)

    def logout(self, request: HttpRequest) -> None:
        do_logout(request)
