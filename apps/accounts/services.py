"""Account life cycle: invitations, deactivation, logout, API tokens, second factor."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import logout as django_logout
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import Action, Outcome
from apps.audit.services import record
from apps.core import ratelimit
from apps.core.net import get_client_ip
from apps.core.realtime import send_event_on_commit, session_group, user_group

from .models import ApiToken, Invitation, User
from .twofactor import forget_requirement
from .typing import AuthedRequest


class AccountError(ValueError):
    """A request that cannot be carried out, with a message for the person who made it."""


# Profile ----------------------------------------------------------------------------------


def do_update_profile(request: AuthedRequest, form: Any) -> User:
    """Save the signed-in user's own details (name, phone, language)."""
    with transaction.atomic():
        user: User = form.save()
        record(Action.UPDATE, request=request, obj=user, detail={"fields": form.changed_data})
    return user


def remember_language(response: HttpResponse, language: str) -> None:
    """Make the interface follow the account's language from now on."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def do_set_language(user: User, language: str, *, request: HttpRequest | None = None) -> None:
    """Keep the language chosen in the footer on the account, so it survives the next login."""
    if user.preferred_language == language:
        return
    with transaction.atomic():
        user.preferred_language = language
        user.save(update_fields=["preferred_language"])
        record(Action.UPDATE, request=request, obj=user, detail={"fields": ["preferred_language"]})


# Invitations ------------------------------------------------------------------------------


def do_invite_staff(
    user: User, *, created_by: User | None, request: HttpRequest | None = None
) -> str:
    """Send a one-time link with which the new staff member chooses a password."""
    if not user.is_staff_member:
        raise AccountError(_("Only staff accounts are invited; patients sign up themselves."))
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        # A new invitation replaces any earlier one still pending.
        Invitation.objects.filter(user=user, used_at__isnull=True).update(expires_at=timezone.now())
        invitation = Invitation.objects.create(
            user=user,
            digest=ApiToken.digest_of(secret),
            created_by=created_by,
            expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
        )
        record(Action.INVITED, request=request, actor=created_by, obj=user)
    url = settings.SITE_URL + reverse("accept_invitation", args=[secret])
    context = {"user": user, "url": url, "expires_at": invitation.expires_at}
    with translation.override(user.preferred_language):
        subject = render_to_string("accounts/email/invitation_subject.txt", context).strip()
        body = render_to_string("accounts/email/invitation_message.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, [user.email]))
    return url


def get_usable_invitation(secret: str) -> Invitation | None:
    invitation = (
        Invitation.objects.select_related("user").filter(digest=ApiToken.digest_of(secret)).first()
    )
    return invitation if invitation is not None and invitation.is_usable else None


def do_accept_invitation(request: HttpRequest, invitation: Invitation, password: str) -> User:
    from allauth.account.models import EmailAddress

    user = invitation.user
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not locked.is_usable:
            raise AccountError(_("This invitation link has already been used or has expired."))
        locked.used_at = timezone.now()
        locked.save(update_fields=["used_at"])
        user.set_password(password)
        user.save(update_fields=["password"])
        EmailAddress.objects.update_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        record(
            Action.UPDATE, request=request, actor=user, obj=user, detail={"invitation": "accepted"}
        )
    return user


# Deactivation and logout --------------------------------------------------------------------


def do_deactivate_user(user: User, *, by: User | None, request: HttpRequest | None = None) -> None:
    """Disable an account: its tokens stop working and its open sockets are closed at once."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        record(Action.DEACTIVATED, request=request, actor=by, obj=user)
        send_event_on_commit("session.closed", {"reason": "deactivated"}, [user_group(user.pk)])


def do_logout(request: HttpRequest, reason: str = "logout") -> None:
    """End the session and close the WebSockets opened with it."""
    user = request.user
    if user.is_authenticated and request.session.session_key:
        send_event_on_commit(
            "session.closed", {"reason": reason}, [session_group(request.session.session_key)]
        )
        action = Action.SESSION_EXPIRED if reason == "idle" else Action.LOGOUT
        record(action, request=request, obj=user)
    django_logout(request)


# API tokens -------------------------------------------------------------------------------

SCOPE_PATTERN = re.compile(r"^[A-Za-z0-9*/._:-]{1,64}$")
DEFAULT_SCOPES = ["api"]


def do_issue_token(
    user: User,
    *,
    name: str = "",
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    by: User | None = None,
) -> tuple[str, ApiToken]:
    """Create a token and return its secret, shown this once and never stored."""
    if not user.is_active:
        raise AccountError(f"{user.email} is deactivated")
    scopes = scopes or list(DEFAULT_SCOPES)
    bad = [scope for scope in scopes if not SCOPE_PATTERN.match(scope)]
    if bad:
        raise AccountError(f"invalid scope(s): {', '.join(bad)}")
    secret, prefix, digest = ApiToken.generate()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=prefix, digest=digest, scopes=scopes, expires_at=expires_at
        )
        record(
            Action.TOKEN_ISSUED, actor=by, obj=token, detail={"user": user.email, "scopes": scopes}
        )
    return secret, token


def do_revoke_token(
    token: ApiToken, *, by: User | None, request: HttpRequest | None = None
) -> None:
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            record(Action.TOKEN_REVOKED, request=request, actor=by, obj=token)


def authenticate_token(secret: str) -> tuple[User, ApiToken] | None:
    """The user and token for a presented secret, or None when unknown, revoked or expired."""
    if not secret.startswith(ApiToken.PREFIX) or len(secret) > 100:
        return None
    token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(digest=ApiToken.digest_of(secret))
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # Write the last-use time at most once a minute: a busy integration must not write per call.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


# Second factor ----------------------------------------------------------------------------

BACKUP_CODE_COUNT = 10


def get_or_create_pending_totp(user: User) -> TOTPDevice:
    """The TOTP device being set up (unconfirmed until the user enters a first code)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def has_confirmed_totp(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def _otp_rate_keys(request: AuthedRequest) -> list[tuple[str, int]]:
    limit = settings.OTP_ATTEMPTS_LIMIT
    return [
        (f"otp:user:{request.user.pk}", limit),
        (f"otp:ip:{get_client_ip(request)}", limit * 4),
    ]


def check_otp_attempt_allowed(request: AuthedRequest) -> bool:
    return not any(ratelimit.is_limited(key, limit) for key, limit in _otp_rate_keys(request))


def _count_otp_failure(request: AuthedRequest) -> None:
    for key, limit in _otp_rate_keys(request):
        ratelimit.hit(key, limit, settings.OTP_ATTEMPTS_WINDOW)


def do_confirm_totp(request: AuthedRequest, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm a new authenticator with its first code; returns fresh backup codes."""
    if not check_otp_attempt_allowed(request):
        raise AccountError(_("Too many attempts. Wait a few minutes and try again."))
    if not device.verify_token(token.strip().replace(" ", "")):
        _count_otp_failure(request)
        record(Action.OTP_FAILED, request=request, obj=request.user, outcome=Outcome.FAILURE)
        return None
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
        codes = _replace_backup_codes(device.user)
        record(Action.OTP_ENABLED, request=request, obj=request.user)
    otp_login(request, device)
    forget_requirement(request.session)
    return codes


def _replace_backup_codes(user: User) -> list[str]:
    static, _created = StaticDevice.objects.get_or_create(
        user=user, name="backup", defaults={"confirmed": True}
    )
    static.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=static, token=code) for code in codes])
    return codes


def do_regenerate_backup_codes(request: AuthedRequest) -> list[str]:
    with transaction.atomic():
        codes = _replace_backup_codes(request.user)
        record(Action.UPDATE, request=request, obj=request.user, detail={"backup_codes": "renewed"})
    return codes


def do_verify_second_factor(request: AuthedRequest, token: str) -> bool:
    """Check a TOTP or backup code for the signed-in user and mark the session verified."""
    from django_otp import match_token

    if not check_otp_attempt_allowed(request):
        raise AccountError(_("Too many attempts. Wait a few minutes and try again."))
    device = match_token(request.user, token.strip().replace(" ", ""))
    if device is None:
        _count_otp_failure(request)
        record(Action.OTP_FAILED, request=request, obj=request.user, outcome=Outcome.FAILURE)
        return False
    otp_login(request, device)
    record(Action.OTP_VERIFIED, request=request, obj=request.user, detail={"device": device.name})
    return True


def do_disable_second_factor(request: AuthedRequest) -> None:
    """Patients may turn two-factor login off again; staff may not."""
    user = request.user
    if user.is_staff_member:
        raise AccountError(_("Staff accounts must keep two-factor login."))
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        record(Action.OTP_DISABLED, request=request, obj=user)
    forget_requirement(request.session)


def create_signed_in_session(user: User, otp_device: TOTPDevice | None = None) -> str:
    """The key of a new session signed in as `user`, as after a login (with `otp_device`: one
    that passed the second factor). For benchmarks whose clients open pages and sockets."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    if otp_device is not None:
        session[DEVICE_ID_SESSION_KEY] = otp_device.persistent_id
    session.create()
    return str(session.session_key)
