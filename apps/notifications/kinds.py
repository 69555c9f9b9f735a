"""The kinds of notification a user can receive, with their default delivery channels."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

PATIENTS = "patients"
STAFF = "staff"
EVERYONE = "everyone"


@dataclass(frozen=True)
class Kind:
    code: str
    label: str | Promise
    audience: str
    email: bool
    sms: bool


KINDS: dict[str, Kind] = {
    kind.code: kind
    for kind in [
        Kind("account.security", _("Account and security"), EVERYONE, email=True, sms=False),
        Kind("appointment", _("Appointments and reminders"), EVERYONE, email=True, sms=True),
        Kind("message", _("New secure messages"), EVERYONE, email=True, sms=False),
        Kind(
            "record", _("New results, documents and prescriptions"), PATIENTS, email=True, sms=False
        ),
        Kind("record.access", _("Emergency access to a record"), EVERYONE, email=True, sms=True),
        Kind("device.alert", _("Remote-monitoring alerts"), STAFF, email=False, sms=True),
        Kind("care.task", _("Care tasks and meetings"), STAFF, email=True, sms=False),
        Kind("care.reminder", _("Medication reminders"), PATIENTS, email=False, sms=True),
        Kind(
            "care.questionnaire",
            _("Follow-up questionnaires and surveys"),
            PATIENTS,
            email=True,
            sms=False,
        ),
        Kind("care.support", _("Decision-support proposals"), STAFF, email=False, sms=False),
        Kind("billing", _("Invoices and payments"), EVERYONE, email=True, sms=False),
        Kind("announcement", _("Announcements"), EVERYONE, email=False, sms=False),
    ]
}


def kinds_for(is_staff_member: bool) -> list[Kind]:
    wanted = {EVERYONE, STAFF if is_staff_member else PATIENTS}
    return [kind for kind in KINDS.values() if kind.audience in wanted]
