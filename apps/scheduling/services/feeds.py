"""Private calendar feeds: a secret URL per person that calendar apps subscribe to.

The token in the URL is the credential (calendar apps cannot log in): it is shown once, only
its SHA-256 is stored, and a person has at most one live feed (a new one revokes the old).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..models import Appointment, CalendarFeed, new_feed_token

# Calendar apps poll every few minutes: remember the last use, not every use.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_have_feed(user: User) -> bool:
    """Patients and clinical staff have appointments to show."""
    return user.is_active and (user.is_patient or user.role in CLINICAL_ROLES)


def live_feed(user: User) -> CalendarFeed | None:
    return CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).first()


@transaction.atomic
def do_create_feed(user: User, *, request: HttpRequest | None = None) -> str:
    """A new secret feed token for `user` (returned once); any previous feed stops working."""
    # One creation at a time per person, so the "one live feed" constraint never trips.
    User.objects.select_for_update().filter(pk=user.pk).first()
    revoked = _revoke(user)
    token = new_feed_token()
    feed = CalendarFeed.objects.create(user=user, token_hash=token_hash(token))
    audit(
        Action.TOKEN_ISSUED,
        request=request,
        actor=user,
        obj=feed,
        detail={"what": "calendar-feed", "replaced": revoked},
    )
    return token


def _revoke(user: User) -> int:
    return CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


@transaction.atomic
def do_revoke_feed(user: User, *, request: HttpRequest | None = None) -> int:
    """Stop the user's feed (its URL answers 404 from now on); how many were live."""
    revoked = _revoke(user)
    if revoked:
        audit(
            Action.TOKEN_REVOKED,
            request=request,
            actor=user,
            object_type="scheduling.calendarfeed",
            detail={"what": "calendar-feed"},
        )
    return revoked


def feed_user(token: str, now: dt.datetime | None = None) -> User | None:
    """The owner of a live feed token, or None (unknown, revoked, or account closed)."""
    if not token or len(token) > 100:
        return None
    feed = (
        CalendarFeed.objects.select_related("user")
        .filter(token_hash=token_hash(token), revoked_at__isnull=True)
        .first()
    )
    if feed is None or not may_have_feed(feed.user):
        return None
    now = now or timezone.now()
    if feed.last_used_at is None or feed.last_used_at <= now - LAST_USED_PRECISION:
        CalendarFeed.objects.filter(pk=feed.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_PRECISION)
        ).update(last_used_at=now)
    return feed.user


def record_feed_read(
    user: User | None,
    appointments: Sequence[Appointment] = (),
    *,
    request: HttpRequest | None = None,
) -> None:
    """One audit row per feed download (with the patients it showed), or per refused token."""
    if user is None:
        audit(
            Action.DENIED,
            request=request,
            object_type="scheduling.calendarfeed",
            outcome="denied",
            detail={"what": "calendar-feed"},
        )
        return
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type="scheduling.calendarfeed",
        detail={
            "what": "calendar-feed",
            "appointments": len(appointments),
            "patients": sorted({a.patient_id for a in appointments}),
        },
    )
