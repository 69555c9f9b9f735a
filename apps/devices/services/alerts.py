"""Alerts: raised by the ingestion, pushed live to the care team, acknowledged or escalated.

- Raising happens in the ingestion transaction (`raise_alerts`); the live push to the care
  team's sockets and the Celery follow-up (notifications to whoever is offline, the escalation
  timer) run when it commits.
- A care-team member acknowledges an alert (with a note) or resolves it. Every read of an alert
  goes through the record's permission gate and leaves an audit row.
- An alert nobody acknowledges within its delay escalates to the next person on call among
  the patient's care team, then to the team's leads (`escalate_due`, run by Celery).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.audit.services import record as audit
from apps.audit.services import record_many
from apps.core import presence
from apps.core.realtime import send_events_on_commit, user_group
from apps.records.access import PatientAccess, deny, get_item_for_user
from apps.records.models import Concept, Patient
from apps.records.services.care_team import clinical_memberships

from ..models import Alert, OnCallShift, Severity, ThresholdRule
from ..units import MEASUREMENTS
from . import DeviceError
from .thresholds import Evaluation, Transition

ALERT_EVENT = "monitoring.alert"


def escalation_delay(rule: ThresholdRule | None, severity: str) -> dt.timedelta | None:
    """How long an alert may stay unacknowledged; None: it never escalates (information)."""
    if rule is not None and rule.escalate_after is not None:
        return rule.escalate_after
    minutes = settings.DEVICES_ESCALATION_MINUTES.get(severity)
    return dt.timedelta(minutes=minutes) if minutes else None


_LABELS: dict[str, tuple[str, str, str]] = {}


def measurement_label(code: str) -> str:
    """The measurement's name in the active language (reference data, read once per process)."""
    if code not in _LABELS:
        for concept in Concept.objects.filter(system="http://loinc.org", code__in=MEASUREMENTS):
            _LABELS[concept.code] = (concept.display, concept.display_fr, concept.display_de)
    if code not in _LABELS:
        return code
    english, french, german = _LABELS[code]
    language = (translation.get_language() or settings.LANGUAGE_CODE)[:2]
    return {"fr": french, "de": german}.get(language, "") or english


def describe(alert: Alert, label: str | None = None) -> str:
    """One line, in the active language: what crossed which limit."""
    label = label or measurement_label(alert.code)
    value = f"{alert.value.normalize():f} {alert.unit}"
    rule = alert.rule
    if rule is None:
        return f"{label}: {value}"
    limit = f"{rule.limit.normalize():f} {alert.unit}"
    if rule.kind == ThresholdRule.Kind.ABOVE:
        text = _("%(label)s %(value)s, above %(limit)s")
    elif rule.kind == ThresholdRule.Kind.BELOW:
        text = _("%(label)s %(value)s, below %(limit)s")
    elif rule.kind == ThresholdRule.Kind.RISE:
        text = _("%(label)s %(value)s, up more than %(limit)s in %(window)s")
    else:
        text = _("%(label)s %(value)s, down more than %(limit)s in %(window)s")
    line = text % {"label": label, "value": value, "limit": limit, "window": _window(rule.window)}
    if rule.m_of > 1:
        line += " " + _("(%(n)s of the last %(m)s readings)") % {"n": rule.n_of, "m": rule.m_of}
    return line


def _window(window: dt.timedelta | None) -> str:
    if window is None:
        return ""
    hours = int(window.total_seconds() // 3600)
    if hours and hours % 24 == 0:
        days = hours // 24
        return translation.ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    return translation.ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}


# ---------------------------------------------------------------------------------------------
# Who hears about an alert


def care_team_members(patient_ids: Iterable[int]) -> dict[int, list[User]]:
    """The current clinical members of each patient's active care teams (one query)."""
    members: dict[int, list[User]] = defaultdict(list)
    rows = clinical_memberships(patient_ids).select_related("user", "care_team").order_by("user_id")
    for row in rows:
        team = members[row.care_team.patient_id]
        if all(user.pk != row.user_id for user in team):
            team.append(row.user)
    return members


def _event(alert: Alert, patient: Patient, label: str) -> dict[str, Any]:
    by = alert.acknowledged_by or alert.resolved_by
    return {
        "id": alert.pk,
        "patient": patient.pk,
        "patient_name": patient.full_name,
        "code": alert.code,
        "severity": alert.severity,
        "state": alert.state,
        "summary": describe(alert, label),
        "value": float(alert.value),
        "unit": alert.unit,
        "measured_at": alert.measured_at.isoformat(),
        "opened_at": alert.opened_at.isoformat(),
        "handled_by": by.get_full_name() if by else "",
        "url": reverse("devices:alert", args=[alert.pk]),
    }


def push_alerts(alerts: list[Alert], members: dict[int, list[User]] | None = None) -> None:
    """Send each alert's current state to its care team, in each member's language."""
    if not alerts:
        return
    if members is None:
        members = care_team_members({a.patient_id for a in alerts})
    patients = Patient.objects.in_bulk({a.patient_id for a in alerts})
    events = []
    for alert in alerts:
        by_language: dict[str, list[str]] = defaultdict(list)
        for user in members.get(alert.patient_id, []):
            by_language[user.preferred_language or settings.LANGUAGE_CODE].append(
                user_group(user.pk)
            )
        for language, groups in by_language.items():
            with translation.override(language):
                label = measurement_label(alert.code)
                events.append(
                    (ALERT_EVENT, _event(alert, patients[alert.patient_id], label), groups)
                )
    send_events_on_commit(events)


# ---------------------------------------------------------------------------------------------
# Raising (inside the ingestion transaction)


def _alert_for(rule: ThresholdRule, transition: Transition, now: dt.datetime) -> Alert:
    point = transition.point
    delay = escalation_delay(rule, rule.severity)
    return Alert(
        patient_id=rule.patient_id,
        rule=rule,
        code=rule.code,
        severity=rule.severity,
        value=point.value,
        unit=rule.unit,
        opened_at=now,
        measured_at=point.at,
        escalate_at=now + delay if delay else None,
    )


def raise_alerts(evaluation: Evaluation) -> list[Alert]:
    """Alerts for the rules that fired; a rule whose last alert is still unhandled reuses it."""
    if not evaluation.fired and not evaluation.cleared:
        return []
    now = timezone.now()
    rule_ids = {rule.pk for rule, _t in evaluation.fired + evaluation.cleared}
    unhandled = {
        alert.rule_id: alert
        for alert in Alert.objects.select_for_update().filter(
            rule_id__in=rule_ids, state__in=Alert.UNHANDLED
        )
    }
    touched: dict[int, Alert] = {}
    links: list[tuple[Alert, list[int]]] = []
    for rule, transition in evaluation.fired:
        alert = unhandled.get(rule.pk)
        if alert is None:
            alert = _alert_for(rule, transition, now)
            alert.save()
            unhandled[rule.pk] = alert
        else:  # fired again before anyone handled it: the same alert, with the new reading
            alert.value = transition.point.value
            alert.measured_at = transition.point.at
            alert.cleared_at = None
            alert.save(update_fields=["value", "measured_at", "cleared_at"])
        links.append((alert, [p.pk for p in transition.breaching]))
        touched[alert.pk] = alert
    # Back to normal: only where a rule's last transition of the batch is the clearing one.
    last_fire = {rule.pk: (t.point.at, t.point.pk) for rule, t in evaluation.fired}
    clears = {
        rule.pk: t.point.at
        for rule, t in evaluation.cleared
        if rule.pk not in last_fire or (t.point.at, t.point.pk) > last_fire[rule.pk]
    }
    if clears:
        cleared = list(
            Alert.objects.select_for_update()
            .filter(rule_id__in=list(clears), cleared_at__isnull=True)
            .exclude(state=Alert.State.RESOLVED)
        )
        for alert in cleared:
            alert.cleared_at = clears[alert.rule_id] if alert.rule_id else None
            touched[alert.pk] = alert
        Alert.objects.bulk_update(cleared, ["cleared_at"])
    through = Alert.readings.through
    through.objects.bulk_create(
        [through(alert_id=alert.pk, observation_id=pk) for alert, pks in links for pk in pks],
        ignore_conflicts=True,
    )
    raised = [alert for alert, _pks in links]
    record_many(  # one append to the audit chain for the batch's alerts
        [
            AuditEvent(
                occurred_at=now,
                action=Action.CREATE,
                object_type="devices.alert",
                object_id=str(alert.pk),
                patient_id=str(alert.patient_id),
                detail={"rule": alert.rule_id, "severity": alert.severity, "code": alert.code},
            )
            for alert in raised
        ]
    )
    push_alerts(list(touched.values()))
    if raised:
        from ..tasks import alerts_raised

        ids = sorted({alert.pk for alert in raised})
        transaction.on_commit(lambda: alerts_raised.delay(ids))
    return raised


def notify_offline(alert_ids: list[int]) -> int:
    """An in-app notification (and SMS or email by preference) to members with no open page."""
    from apps.notifications.services import notify

    alerts = list(Alert.objects.filter(pk__in=alert_ids, state__in=Alert.UNHANDLED))
    members = care_team_members({a.patient_id for a in alerts})
    everyone = {user.pk for users in members.values() for user in users}
    online = presence.online(everyone)
    sent = 0
    for alert in alerts:
        for user in members.get(alert.patient_id, []):
            if user.pk in online:
                continue
            _notify(user, alert, notify)
            sent += 1
    return sent


def _notify(user: User, alert: Alert, notify: Any) -> None:
    # Notifications may leave by SMS or email: no clinical detail, only where to look.
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        title = (
            _("Critical remote-monitoring alert")
            if alert.severity == Severity.CRITICAL
            else _("Remote-monitoring alert")
        )
        body = _("A patient's reading needs your attention. Sign in to see it.")
    notify(user, "device.alert", title, body, reverse("devices:alert", args=[alert.pk]))


# ---------------------------------------------------------------------------------------------
# Reading and handling


def get_alert_for_user(
    user: User, alert_id: Any, *, request: HttpRequest | None = None, action: str | None = "read"
) -> tuple[Alert, PatientAccess]:
    """The alert if `user` is clinical staff who may see the patient (audited); Http404 if not.

    Alerts are the care team's work list: the patient reads their readings, not the alerts.
    """
    queryset = Alert.objects.select_related("patient", "rule", "acknowledged_by", "resolved_by")
    alert, access = get_item_for_user(
        user, Alert, alert_id, request=request, what="alert", action=None, queryset=queryset
    )
    if access.is_patient_self or not access.clinical:
        raise deny(
            user,
            request=request,
            what="alert",
            object_type="devices.alert",
            object_id=alert_id,
            patient_id=alert.patient_id,
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=alert,
            patient_id=str(alert.patient_id),
            detail=access.audit_detail(what="alert"),
        )
    return alert, access


def _handle(alert: Alert, by: User, state: str, note: str, request: HttpRequest | None) -> Alert:
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("rule", "acknowledged_by")
            .get(pk=alert.pk)
        )
        now = timezone.now()
        if alert.state == Alert.State.RESOLVED:
            raise DeviceError(_("This alert is already resolved."))
        if state == Alert.State.ACKNOWLEDGED:
            if alert.state == Alert.State.ACKNOWLEDGED:
                raise DeviceError(
                    _("%(name)s already acknowledged this alert.")
                    % {
                        "name": alert.acknowledged_by.get_full_name()
                        if alert.acknowledged_by
                        else "?"
                    }
                )
            alert.acknowledged_at, alert.acknowledged_by = now, by
        else:
            alert.resolved_at, alert.resolved_by = now, by
            if alert.acknowledged_at is None:
                alert.acknowledged_at, alert.acknowledged_by = now, by
        alert.state = state
        alert.escalate_at = None
        if note.strip():
            stamp = f"[{timezone.localtime(now):%Y-%m-%d %H:%M}] {by.get_full_name()}: "
            alert.note = (alert.note + "\n" if alert.note else "") + stamp + note.strip()
        alert.save()
        audit(
            Action.UPDATE,
            request=request,
            actor=by,
            object_type="devices.alert",
            object_id=str(alert.pk),
            patient_id=str(alert.patient_id),
            detail={"state": state, "note": bool(note.strip())},
        )
        push_alerts([alert])
    return alert


def do_acknowledge_alert(
    alert: Alert, by: User, note: str = "", *, request: HttpRequest | None = None
) -> Alert:
    """Someone is on it: stops the escalation. The note is kept with the alert."""
    return _handle(alert, by, Alert.State.ACKNOWLEDGED, note, request)


def do_resolve_alert(
    alert: Alert, by: User, note: str = "", *, request: HttpRequest | None = None
) -> Alert:
    """Done with it (acknowledging it too if nobody had)."""
    return _handle(alert, by, Alert.State.RESOLVED, note, request)


# ---------------------------------------------------------------------------------------------
# Escalation


def escalation_chain(alert: Alert, at: dt.datetime) -> list[User]:
    """Care-team members on call at `at` by rank, then the team's leads.

    On-call staff outside the patient's care team are skipped: they could not open the record.
    """
    members = care_team_members([alert.patient_id]).get(alert.patient_id, [])
    by_id = {user.pk: user for user in members}
    shifts = OnCallShift.objects.filter(
        user_id__in=list(by_id), starts_at__lte=at, ends_at__gt=at
    ).order_by("rank", "starts_at", "user_id")
    chain: list[User] = []
    for shift in shifts:
        if by_id[shift.user_id] not in chain:
            chain.append(by_id[shift.user_id])
    leads = (
        clinical_memberships([alert.patient_id])
        .filter(is_lead=True)
        .values_list("user_id", flat=True)
    )
    for user_id in sorted(set(leads)):
        if by_id[user_id] not in chain:
            chain.append(by_id[user_id])
    return chain


def escalate_due(now: dt.datetime | None = None) -> int:
    """Escalate every unhandled alert whose delay ran out; several workers may run this."""
    from apps.notifications.services import notify

    now = now or timezone.now()
    escalated = 0
    while True:
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(state__in=Alert.UNHANDLED, escalate_at__lte=now)
                .select_related("rule")
                .order_by("escalate_at")
                .first()
            )
            if alert is None:
                return escalated
            already = set(alert.escalated_to.values_list("pk", flat=True))
            chain = [user for user in escalation_chain(alert, now) if user.pk not in already]
            delay = escalation_delay(alert.rule, alert.severity)
            if not chain:
                # Nobody left to call: it stays escalated, on every dashboard, until handled.
                alert.escalate_at = None
                alert.save(update_fields=["escalate_at"])
                continue
            target = chain[0]
            alert.state = Alert.State.ESCALATED
            alert.escalation_level += 1
            alert.escalate_at = now + delay if delay and len(chain) > 1 else None
            alert.save(update_fields=["state", "escalation_level", "escalate_at"])
            alert.escalated_to.add(target)
            audit(
                Action.UPDATE,
                object_type="devices.alert",
                object_id=str(alert.pk),
                patient_id=str(alert.patient_id),
                detail={"state": "escalated", "level": alert.escalation_level, "to": target.pk},
            )
            _notify(target, alert, notify)
            push_alerts([alert])
            escalated += 1


def unhandled_alerts_for(user: User) -> Any:
    """Unhandled alerts of the patients whose care team `user` is on, newest first."""
    from apps.records.access import patients_for_user

    return (
        Alert.objects.filter(
            Q(state__in=Alert.UNHANDLED), patient__in=patients_for_user(user).values("pk")
        )
        .select_related("patient", "rule", "acknowledged_by")
        .order_by("-opened_at")
    )
