from __future__ import annotations

import segno
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.typing import AuthedRequest

from . import services
from .forms import AcceptInvitationForm, OtpTokenForm, ProfileForm


def _next_url(request: HttpRequest, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}):
        return candidate
    return default


def _home_for(request: HttpRequest) -> str:
    return "/clinic/" if request.user.is_staff_member else "/"  # type: ignore[union-attr]


@login_required
def two_factor_setup(request: AuthedRequest) -> HttpResponse:
    if services.has_confirmed_totp(request.user):
        return redirect("security")
    device = services.get_or_create_pending_totp(request.user)
    form = OtpTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.do_confirm_totp(request, device, form.cleaned_data["token"])
        except services.AccountError as error:
            form.add_error("token", str(error))
        else:
            if codes is None:
                form.add_error("token", _("This code is not valid. Check the time on your phone."))
            else:
                return render(
                    request,
                    "accounts/backup_codes.html",
                    {"codes": codes, "next": _next_url(request, _home_for(request))},
                )
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#111")
    secret = _base32(device.bin_key)
    return render(
        request,
        "accounts/two_factor_setup.html",
        {"form": form, "qr_svg": qr_svg, "secret": secret, "next": _next_url(request, "")},
    )


def _base32(key: bytes) -> str:
    import base64

    raw = base64.b32encode(key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@login_required
def two_factor_verify(request: AuthedRequest) -> HttpResponse:
    if not services.has_confirmed_totp(request.user):
        return redirect("two_factor_setup")
    form = OtpTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ok = services.do_verify_second_factor(request, form.cleaned_data["token"])
        except services.AccountError as error:
            form.add_error("token", str(error))
        else:
            if ok:
                return redirect(_next_url(request, _home_for(request)))
            form.add_error("token", _("This code is not valid."))
    return render(
        request, "accounts/two_factor_verify.html", {"form": form, "next": _next_url(request, "")}
    )


@login_required
def profile(request: AuthedRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        user = services.do_update_profile(request, form)
        messages.success(request, _("Your details are saved."))
        response = redirect("profile")
        services.remember_language(response, user.preferred_language)
        return response
    return render(request, "accounts/profile.html", {"form": form})


@login_required
def security(request: AuthedRequest) -> HttpResponse:
    return render(
        request,
        "accounts/security.html",
        {"has_totp": services.has_confirmed_totp(request.user)},
    )


@login_required
@require_POST
def regenerate_backup_codes(request: AuthedRequest) -> HttpResponse:
    if not request.user.is_verified():  # type: ignore[attr-defined]
        return redirect("two_factor_verify")
    codes = services.do_regenerate_backup_codes(request)
    return render(
        request, "accounts/backup_codes.html", {"codes": codes, "next": "/accounts/security/"}
    )


@login_required
@require_POST
def disable_two_factor(request: AuthedRequest) -> HttpResponse:
    try:
        services.do_disable_second_factor(request)
    except services.AccountError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Two-factor login is off."))
    return redirect("security")


def accept_invitation(request: HttpRequest, secret: str) -> HttpResponse:
    invitation = services.get_usable_invitation(secret)
    if invitation is None:
        return render(request, "accounts/invitation_invalid.html", status=404)
    form = AcceptInvitationForm(invitation.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.do_accept_invitation(
                request, invitation, form.cleaned_data["new_password1"]
            )
        except services.AccountError as error:
            messages.error(request, str(error))
            return render(request, "accounts/invitation_invalid.html", status=404)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome! Now protect your account with two-factor login."))
        return redirect("two_factor_setup")
    return render(
        request, "accounts/accept_invitation.html", {"form": form, "invited": invitation.user}
    )


@login_required
@require_POST
def keepalive(request: AuthedRequest) -> HttpResponse:
    """The idle-timeout warning's "stay signed in" button: any request refreshes activity."""
    return HttpResponse(status=204)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch, which also stores the choice on a signed-in account."""
    from django.conf import settings
    from django.views.i18n import set_language as django_set_language

    response = django_set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        services.do_set_language(request.user, language, request=request)  # type: ignore[arg-type]
    return response
