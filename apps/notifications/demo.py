from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from .models import Notification


def seed(context: dict[str, Any]) -> None:
    """A welcome notification in each demo inbox (written directly: demo data sends no email)."""
    for user in context.get("users", {}).values():
        if not Notification.objects.filter(user=user, kind="announcement").exists():
            Notification.objects.create(
                user=user,
                kind="announcement",
                title=_("Welcome to the virtual hospital"),
                body=_("This is a demonstration account with fictitious data."),
                link="/",
            )
