from __future__ import annotations

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class HospitalAdminSite(admin.AdminSite):
    """The Django admin, for administrators who signed in with their second factor."""

    site_header = _("Virtual hospital — administration")
    site_title = _("Virtual hospital")
    index_title = _("Administration")

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(
            super().has_permission(request) and getattr(user, "is_verified", lambda: False)()
        )

    def login(self, request: HttpRequest, extra_context: object = None) -> HttpResponse:  # type: ignore[override]
        from django.contrib.auth.views import redirect_to_login

        if request.user.is_authenticated:
            # Signed in but not an administrator: the admin does not exist for them.
            raise Http404
        # One login page for everyone: allauth's, followed by the second factor.
        return redirect_to_login(
            request.GET.get("next", reverse("admin:index")), reverse("account_login")
        )
