"""Forms of the task pages: a new task (or a handover), assigning, completing, cancelling, notes.

The forms parse; the rules (who may do what, which report a kind needs) are the services',
whose CareError is shown to the user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import CLINICAL_ROLES, Role, User

from .models import CarePlan, Task
from .services.tasks import INSTRUCTIONS_MAX, NOTE_MAX, REASON_MAX, REPORT_MAX, TITLE_MAX

# When only a day is given, the task is due at its end.
END_OF_DAY = dt.time(23, 59)
USER_PREFIX = "user:"
ROLE_PREFIX = "role:"


def assignee_choices(team: Sequence[User], me: User | None = None) -> list[tuple[Any, Any]]:
    """Colleagues of the care team by name, then professions (anyone of them on the team)."""
    people = [
        (
            f"{USER_PREFIX}{user.pk}",
            _("%(name)s (me)") % {"name": user.get_full_name() or user.email}
            if me is not None and user.pk == me.pk
            else f"{user.get_full_name() or user.email} · {user.role_label}",
        )
        for user in team
    ]
    roles = [
        (f"{ROLE_PREFIX}{role.value}", _("Anyone: %(profession)s") % {"profession": role.label})
        for role in Role
        if role in CLINICAL_ROLES
    ]
    return [(_("A colleague"), people), (_("A profession"), roles)] if people else roles


def parse_assignee(value: str, team: Sequence[User]) -> tuple[User | None, str]:
    """("user:12" | "role:nurse") → (the team member, "") or (None, the profession)."""
    if value.startswith(ROLE_PREFIX):
        return None, value.removeprefix(ROLE_PREFIX)
    wanted = value.removeprefix(USER_PREFIX)
    for user in team:
        if str(user.pk) == wanted:
            return user, ""
    raise forms.ValidationError(_("Choose a colleague of the care team or a profession."))


class AssigneeField(forms.ChoiceField):
    def __init__(self, *, team: Sequence[User], me: User | None, **kwargs: Any) -> None:
        super().__init__(choices=[("", "—"), *assignee_choices(team, me)], **kwargs)


class TaskForm(forms.Form):
    """A task for a colleague or a profession of the care team; a handover is a task too."""

    kind = forms.ChoiceField(
        label=_("Kind"), choices=[(key, capfirst(label)) for key, label in Task.Kind.choices]
    )
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    instructions = forms.CharField(
        label=_("Instructions"),
        required=False,
        max_length=INSTRUCTIONS_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What to do and what to watch for. Required for a handover."),
    )
    priority = forms.ChoiceField(
        label=_("Priority"),
        choices=[(key, capfirst(label)) for key, label in Task.Priority.choices],
        initial=Task.Priority.ROUTINE,
    )
    due_date = forms.DateField(
        label=_("Due on"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    due_time = forms.TimeField(
        label=_("at"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}),
        help_text=_("Without a time: by the end of the day."),
    )
    plan = forms.ChoiceField(label=_("Care plan"), required=False)

    field_order = ["kind", "title", "assign_to", "priority", "due_date", "due_time"]

    def __init__(
        self,
        *args: Any,
        team: Sequence[User],
        me: User,
        plans: Sequence[CarePlan] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", "task-%s")
        super().__init__(*args, **kwargs)
        self.team = list(team)
        self.fields["assign_to"] = AssigneeField(team=self.team, me=me, label=_("For"))
        self.order_fields(self.field_order)
        plan_field = cast(forms.ChoiceField, self.fields["plan"])
        plan_field.choices = [("", _("None")), *[(str(plan.pk), plan.title) for plan in plans]]
        if not plans:
            del self.fields["plan"]
        self.plans = {str(plan.pk): plan for plan in plans}

    def clean_assign_to(self) -> tuple[User | None, str]:
        return parse_assignee(self.cleaned_data["assign_to"], self.team)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        day, time = data.get("due_date"), data.get("due_time")
        data["due_at"] = None
        if time is not None and day is None:
            self.add_error("due_date", _("Give the day the task is due."))
        elif day is not None:
            due = timezone.make_aware(dt.datetime.combine(day, time or END_OF_DAY))
            if due < timezone.now():
                self.add_error("due_date", _("This due time has already passed."))
            data["due_at"] = due
        if data.get("kind") == Task.Kind.HANDOVER and not (data.get("instructions") or "").strip():
            self.add_error("instructions", _("Write the handover for your colleague."))
        data["plan_obj"] = self.plans.get(data.get("plan") or "")
        return data


class AssignForm(forms.Form):
    def __init__(self, *args: Any, team: Sequence[User], me: User | None, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "assign-%s")
        super().__init__(*args, **kwargs)
        self.team = list(team)
        self.fields["assign_to"] = AssigneeField(team=self.team, me=me, label=_("Hand over to"))

    def clean_assign_to(self) -> tuple[User | None, str]:
        return parse_assignee(self.cleaned_data["assign_to"], self.team)


class CompleteForm(forms.Form):
    report = forms.CharField(
        label=_("Report"),
        required=False,
        max_length=REPORT_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What was done and what the requester should know."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "complete-%s")
        super().__init__(*args, **kwargs)


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason for cancelling"), max_length=REASON_MAX)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "cancel-%s")
        super().__init__(*args, **kwargs)


class NoteForm(forms.Form):
    text = forms.CharField(
        label=_("Note for the team"),
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("An instruction or a report; the other party of the task is told."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "note-%s")
        super().__init__(*args, **kwargs)
