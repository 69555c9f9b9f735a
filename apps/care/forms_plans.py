"""Forms of the care-plan pages: a new plan (from a pathway or from scratch), a goal, an
activity, the status changes and the follow-up interval.

The forms only parse; the rules (who writes, what a plan accepts) are the services', whose
CareError is shown on the form so that nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.records.models import Concept

from .models import Activity, CarePlan, Goal, Pathway

SCRATCH = "scratch"
MAX_DAYS = 3650


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


def _person(user: User) -> str:
    name = user.get_full_name() or user.email
    return f"{name} ({Role(user.role).label})"


def member_choices(team: Sequence[User], empty: Any) -> list[tuple[str, Any]]:
    return [("", empty)] + [(str(user.pk), _person(user)) for user in team]


class NewPlanForm(forms.Form):
    pathway = forms.ChoiceField(label=_("Start from"), widget=forms.RadioSelect)
    start_date = forms.DateField(label=_("Start"), widget=DateInput())
    coordinator = forms.ChoiceField(label=_("Coordinator"), required=False)
    title = forms.CharField(
        label=_("Title"),
        required=False,
        max_length=200,
        help_text=_("From a pathway: leave empty to use the pathway's name."),
    )
    description = forms.CharField(
        label=_("Description"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("From scratch only: a pathway brings its own."),
    )
    follow_up_days = forms.IntegerField(
        label=_("Follow-up every (days)"),
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        help_text=_("From scratch only: a pathway brings its own."),
    )

    def __init__(
        self, *args: Any, pathways: Sequence[Pathway], team: Sequence[User], **kwargs: Any
    ) -> None:
        kwargs.setdefault("initial", {"start_date": timezone.localdate()})
        super().__init__(*args, **kwargs)
        self.pathways = {str(p.pk): p for p in pathways}
        self.team = {str(u.pk): u for u in team}
        cast(forms.ChoiceField, self.fields["pathway"]).choices = [
            (pk, pathway.display_name()) for pk, pathway in self.pathways.items()
        ] + [(SCRATCH, _("From scratch"))]
        cast(forms.ChoiceField, self.fields["coordinator"]).choices = member_choices(
            team, _("— nobody yet —")
        )

    def clean_coordinator(self) -> User | None:
        value = self.cleaned_data.get("coordinator") or ""
        return self.team.get(value)

    def chosen_pathway(self) -> Pathway | None:
        return self.pathways.get(self.cleaned_data.get("pathway") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("pathway") == SCRATCH and not (data.get("title") or "").strip():
            self.add_error("title", _("A plan written from scratch needs a title."))
        return data


def measure_choices() -> list[tuple[str, Any]]:
    """The measurements a goal may be read on: the record's vital signs and laboratory codes."""
    concepts = Concept.objects.filter(
        system="http://loinc.org", category__in=["vital-signs", "laboratory"]
    ).exclude(unit="")
    choices = sorted(
        ((c.code, f"{c.label} ({c.unit})") for c in concepts), key=lambda choice: choice[1]
    )
    return [("", _("— not measured —"))] + choices


class GoalForm(forms.Form):
    description = forms.CharField(label=_("Goal"), max_length=300)
    measure = forms.ChoiceField(label=_("Measured by"), required=False)
    target_low = forms.DecimalField(
        label=_("Target from"), required=False, max_digits=10, decimal_places=3
    )
    target_high = forms.DecimalField(
        label=_("Target up to"), required=False, max_digits=10, decimal_places=3
    )
    due_date = forms.DateField(label=_("Due"), required=False, widget=DateInput())

    prefix = "goal"

    def __init__(self, *args: Any, measures: list[tuple[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["measure"]).choices = measures

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = data.get("target_low"), data.get("target_high")
        if (low is not None or high is not None) and not data.get("measure"):
            self.add_error("measure", _("Choose the measurement the target is read on."))
        if low is not None and high is not None and low > high:
            self.add_error("target_high", _("The upper target is below the lower one."))
        return data


class ActivityForm(forms.Form):
    title = forms.CharField(label=_("Activity"), max_length=200)
    kind = forms.ChoiceField(label=_("Kind"), choices=Activity.Kind.choices)
    responsible = forms.ChoiceField(label=_("Responsible"), required=False)
    due_date = forms.DateField(label=_("Due"), required=False, widget=DateInput())
    repeat_days = forms.IntegerField(
        label=_("Then every (days)"), required=False, min_value=1, max_value=MAX_DAYS
    )
    detail = forms.CharField(
        label=_("Detail"), required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )

    prefix = "activity"

    def __init__(self, *args: Any, team: Sequence[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = {f"user:{u.pk}": u for u in team}
        roles = [(f"role:{role.value}", role.label) for role in Role if role in CLINICAL_ROLES]
        cast(forms.ChoiceField, self.fields["responsible"]).choices = [
            ("", _("— the plan's coordinator —")),
            (_("A profession"), roles),
            (_("A person"), [(key, _person(user)) for key, user in self.team.items()]),
        ]

    def chosen_responsible(self) -> tuple[User | None, str]:
        """The person, or else the profession, chosen as responsible."""
        value = self.cleaned_data.get("responsible") or ""
        if value.startswith("role:"):
            return None, value.removeprefix("role:")
        return self.team.get(value), ""


class PlanStatusForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[
            (CarePlan.Status.ON_HOLD, pgettext_lazy("care plan action", "Put on hold")),
            (CarePlan.Status.ACTIVE, pgettext_lazy("care plan action", "Resume")),
            (CarePlan.Status.COMPLETED, pgettext_lazy("care plan action", "Complete")),
            (CarePlan.Status.REVOKED, pgettext_lazy("care plan action", "Stop")),
        ],
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=300)


class ActivityStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Activity.Status.choices)


class GoalStatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (Goal.Status.ACTIVE, Goal.Status.ACTIVE.label),
            (Goal.Status.ACHIEVED, Goal.Status.ACHIEVED.label),
            (Goal.Status.CANCELLED, Goal.Status.CANCELLED.label),
        ]
    )


class FollowUpForm(forms.Form):
    follow_up_days = forms.IntegerField(
        label=_("Follow-up every (days)"), required=False, min_value=1, max_value=MAX_DAYS
    )
    next_follow_up = forms.DateField(label=_("Next follow-up"), required=False, widget=DateInput())

    prefix = "follow"
