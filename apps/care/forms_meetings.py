"""Forms of the meeting pages. They check shapes; the services check the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import CLINICAL_ROLES, Role, User

from .models import Meeting, TaskKind

DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
MAX_ACTION_ROWS = 20


class MeetingForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    kind = forms.ChoiceField(label=_("Kind"), choices=Meeting.Kind.choices)
    starts_at = forms.DateTimeField(label=_("Starts"), widget=DATETIME)
    ends_at = forms.DateTimeField(label=_("Ends"), widget=DATETIME)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", _("The meeting must end after it starts."))
        return data


class ScheduleForm(MeetingForm):
    participants = forms.ModelMultipleChoiceField(
        label=_("Participants"),
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, colleagues: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["participants"]
        field.queryset = colleagues
        field.label_from_instance = lambda user: f"{user.get_full_name()} — {user.role_label}"


class CaseForm(forms.Form):
    patient = forms.ModelChoiceField(label=_("Patient"), queryset=User.objects.none())
    question = forms.CharField(
        label=_("Question for the meeting"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, patients: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "case-%s")
        super().__init__(*args, **kwargs)
        field: Any = self.fields["patient"]
        field.queryset = patients
        field.label_from_instance = lambda p: (
            f"{p.family_name} {p.given_names} ({p.birth_date:%d.%m.%Y})"
        )


class SummaryForm(forms.Form):
    question = forms.CharField(label=_("Question for the meeting"), max_length=500)
    summary = forms.CharField(
        label=_("Case summary"),
        max_length=20000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 12}),
    )


def role_choices() -> list[tuple[str, str]]:
    return [(str(value), str(label)) for value, label in Role.choices if value in CLINICAL_ROLES]


def kind_choices() -> list[tuple[str, str]]:
    return [(str(value), str(label)) for value, label in TaskKind.choices]


def parse_decision(data: QueryDict) -> tuple[str, list[dict[str, Any]]]:
    """The decision's text and its follow-up rows (`action-<n>-title|kind|assignee|role|due`).

    Rows left entirely empty are dropped (the form always offers a few blank ones); the
    service validates the others and names the row that is wrong.
    """
    text = data.get("text", "")
    actions = []
    for number in range(MAX_ACTION_ROWS + 5):
        prefix = f"action-{number}-"
        title = data.get(prefix + "title", "").strip()
        assignee = data.get(prefix + "assignee", "").strip()
        role = data.get(prefix + "role", "").strip()
        due = data.get(prefix + "due", "").strip()
        if not title and not assignee and not role and not due:
            continue
        actions.append(
            {
                "title": title,
                "kind": data.get(prefix + "kind", ""),
                "assignee": assignee or None,
                "role": role,
                "due_days": int(due) if due.isdigit() else due,
            }
        )
    return text, actions
