"""Celery work of remote monitoring: what follows a new alert, and escalations."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .models import Alert
from .services.alerts import escalate_due, notify_offline


@shared_task(acks_late=True, ignore_result=True)
def alerts_raised(alert_ids: list[int]) -> int:
    """Notify offline care-team members, and wake up when the first escalation is due."""
    sent = notify_offline(alert_ids)
    due = (
        Alert.objects.filter(pk__in=alert_ids, escalate_at__isnull=False)
        .order_by("escalate_at")
        .values_list("escalate_at", flat=True)
        .first()
    )
    if due is not None:
        # The beat sweep (every 30 s) catches it too if this message is lost.
        escalate_alerts.apply_async(eta=max(due, timezone.now()))
    return sent


@shared_task(acks_late=True, ignore_result=True)
def escalate_alerts() -> int:
    return escalate_due()
