"""Who must present a second factor, and whether a session has presented it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django_otp import DEVICE_ID_SESSION_KEY, user_has_device
from django_otp.models import Device

from .models import User

_REQUIRED_SESSION_KEY = "vh_2fa_required"


def second_factor_required(user: User, session: Any = None) -> bool:
    """Staff always; a patient once they turned two-factor login on.

    The answer is kept in the session (set again whenever a device is added or removed) so an
    ordinary page costs no device look-up.
    """
    if user.is_staff_member:
        return True
    if session is not None and _REQUIRED_SESSION_KEY in session:
        return bool(session[_REQUIRED_SESSION_KEY])
    required = user_has_device(user, confirmed=True)
    if session is not None:
        session[_REQUIRED_SESSION_KEY] = required
    return required


def forget_requirement(session: Any) -> None:
    session.pop(_REQUIRED_SESSION_KEY, None)


def session_satisfies_second_factor(user: User, session: Any) -> bool:
    """For WebSocket scopes, where django-otp's middleware does not run."""
    if not second_factor_required(user, session):
        return True
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return False
    device = Device.from_persistent_id(persistent_id, for_verify=False)
    return device is not None and device.user_id == user.pk and device.confirmed


def request_satisfies_second_factor(request: HttpRequest) -> bool:
    user = request.user
    if not user.is_authenticated:
        return False
    if not second_factor_required(user, request.session):  # type: ignore[arg-type]
        return True
    return bool(getattr(user, "is_verified", lambda: False)())
