"""Notifying users: in-app inbox (live), then email and SMS by preference, after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone, translation

from apps.accounts.models import User
from apps.core.realtime import send_event_on_commit, user_group

from .kinds import KINDS, Kind, kinds_for
from .models import Channel, Delivery, Notification, Preference
from .sms import SmsError, get_sms_backend

logger = logging.getLogger(__name__)


class UnknownKind(ValueError):
    pass


# (file name, content, MIME type) of one email attachment.
Attachment = tuple[str, bytes, str]
AttachmentProvider = Callable[[Notification], list[Attachment]]
_ATTACHMENTS: dict[str, list[AttachmentProvider]] = {}


def register_attachments(kind: str, provider: AttachmentProvider) -> None:
    """Let `provider(notification)` add files to the emails of this kind (e.g. an .ics).

    Apps register from their `AppConfig.ready()`; a provider reads `notification.ref` to find
    what the notification is about and returns [] when it has nothing to add.
    """
    if kind not in KINDS:
        raise UnknownKind(kind)
    if provider not in _ATTACHMENTS.setdefault(kind, []):
        _ATTACHMENTS[kind].append(provider)


def attachments_for(notification: Notification) -> list[Attachment]:
    """The files the registered providers add; one failing never holds back the email."""
    found: list[Attachment] = []
    for provider in _ATTACHMENTS.get(notification.kind, []):
        try:
            found += provider(notification)
        except Exception:
            logger.exception("attachment provider failed for notification %s", notification.pk)
    return found


def notify(
    user: User, kind: str, title: str, body: str = "", link: str = "", *, ref: str = ""
) -> Notification:
    """Put a notification in the user's inbox and deliver it by the channels they chose.

    `title` and `body` may be sent by email or SMS: they must not contain clinical details.
    `ref` names what it is about ("scheduling.appointment:12") for attachment providers.
    """
    if kind not in KINDS:
        raise UnknownKind(kind)
    notification = Notification.objects.create(
        user=user, kind=kind, title=title[:200], body=body, link=link, ref=ref[:80]
    )
    send_event_on_commit(
        "notification.created",
        {
            "id": notification.pk,
            "kind": kind,
            "title": notification.title,
            "body": body,
            "link": link,
            "created_at": notification.created_at.isoformat(),
            "unread_count": unread_count(user),
        },
        groups=[user_group(user.pk)],
    )
    if channels_for(user, KINDS[kind]):
        from .tasks import deliver_notification

        deliver_notification.delay_on_commit(notification.pk)  # type: ignore[attr-defined]
    return notification


def unread_count(user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def preferences_for(user: User) -> list[tuple[Kind, bool, bool]]:
    """Each kind this user may receive, with the email and SMS choice (or its default)."""
    saved = {p.kind: p for p in Preference.objects.filter(user=user)}
    rows = []
    for kind in kinds_for(user.is_staff_member):
        pref = saved.get(kind.code)
        rows.append((kind, pref.email if pref else kind.email, pref.sms if pref else kind.sms))
    return rows


def channels_for(user: User, kind: Kind) -> list[str]:
    pref = Preference.objects.filter(user=user, kind=kind.code).first()
    email = pref.email if pref else kind.email
    sms = pref.sms if pref else kind.sms
    channels: list[str] = []
    if email and user.email:
        channels.append(Channel.EMAIL)
    if sms and user.phone:
        channels.append(Channel.SMS)
    return channels


def set_preferences(user: User, choices: dict[str, tuple[bool, bool]]) -> None:
    allowed = {kind.code for kind in kinds_for(user.is_staff_member)}
    with transaction.atomic():
        for code, (email, sms) in choices.items():
            if code not in allowed:
                raise UnknownKind(code)
            Preference.objects.update_or_create(
                user=user, kind=code, defaults={"email": email, "sms": sms}
            )


def get_notification_for_user(user: User, notification_id: int) -> Notification:
    return get_object_or_404(Notification, pk=notification_id, user=user)


def do_mark_read(user: User, notification_id: int | None = None) -> int:
    """Mark one notification (or all when no id) read; returns the new unread count."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        get_notification_for_user(user, notification_id)
        unread = unread.filter(pk=notification_id)
    unread.update(read_at=timezone.now())
    count = unread_count(user)
    send_event_on_commit("notification.read", {"unread_count": count}, groups=[user_group(user.pk)])
    return count


def _email_text(notification: Notification) -> dict[str, Any]:
    context = {
        "notification": notification,
        "link": f"{settings.SITE_URL}{notification.link}"
        if notification.link
        else settings.SITE_URL,
        "preferences_url": f"{settings.SITE_URL}/notifications/preferences/",
    }
    return {
        "subject": notification.title,
        "message": render_to_string("notifications/email.txt", context),
    }


def deliver(notification_id: int) -> dict[str, str]:
    """Send a notification by email/SMS once per channel; safe to run again after a failure."""
    notification = Notification.objects.select_related("user").filter(pk=notification_id).first()
    if notification is None:
        return {}
    user = notification.user
    results: dict[str, str] = {}
    kind = KINDS.get(notification.kind)
    if kind is None or not user.is_active:
        return results
    with translation.override(user.preferred_language):
        for channel in channels_for(user, kind):
            delivery, _created = Delivery.objects.get_or_create(
                notification=notification, channel=channel
            )
            if delivery.status == Delivery.Status.SENT:
                results[channel] = delivery.status
                continue
            delivery.attempts += 1
            try:
                if channel == Channel.EMAIL:
                    content = _email_text(notification)
                    email = EmailMessage(content["subject"], content["message"], to=[user.email])
                    for filename, data, mimetype in attachments_for(notification):
                        email.attach(filename, data, mimetype)
                    email.send()
                else:
                    text = f"{notification.title} — {settings.SITE_URL}{notification.link}"
                    get_sms_backend().send(user.phone, text[:300])
            except (OSError, SmsError) as error:
                delivery.status = Delivery.Status.FAILED
                delivery.last_error = str(error)[:500]
            else:
                delivery.status = Delivery.Status.SENT
                delivery.sent_at = timezone.now()
                delivery.last_error = ""
            delivery.save()
            results[channel] = delivery.status
    return results
