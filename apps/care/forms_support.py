"""Forms of decision support: accepting (with an assignee for tasks), dismissing (a reason is
required), and the admin's rule form (parameters and reasons validated per kind)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User

from .models import Rule
from .services.support.parameters import PLACEHOLDERS
from .services.support.rules import RULE_FIELDS, RuleError, check_rule

REASON_MAX = 300


class AcceptForm(forms.Form):
    """Who takes the task an accepted proposal creates (the acceptor when left empty)."""

    assignee = forms.TypedChoiceField(
        label=_("Task for"), coerce=int, required=False, empty_value=None
    )

    def __init__(self, *args: Any, team: list[User], me: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = {user.pk: user for user in team}
        choices: list[tuple[Any, Any]] = [("", _("Myself"))]
        choices += [
            (user.pk, f"{user.get_full_name()} · {user.role_label}")
            for user in team
            if user.pk != me.pk
        ]
        field = self.fields["assignee"]
        assert isinstance(field, forms.ChoiceField)  # noqa: S101 - declared above
        field.choices = choices

    def chosen_assignee(self) -> User | None:
        pk = self.cleaned_data.get("assignee")
        return self.team.get(pk) if pk else None


class DismissForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for dismissing"),
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required: it stays with the proposal, for the team."),
    )


class RuleAdminForm(forms.ModelForm):
    """A rule version as the admin edits it; saving writes the next version."""

    parameters = forms.CharField(
        label=_("parameters (JSON)"),
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80, "spellcheck": "false"}),
        help_text=_("See the description of each kind in the documentation of decision support."),
    )

    class Meta:
        model = Rule
        fields = ["code", *[name for name in RULE_FIELDS if name != "parameters"], "parameters"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["parameters"] = json.dumps(
                self.instance.parameters, indent=2, ensure_ascii=False
            )
            # A version's code is its identity: editing it would start another rule.
            if "code" in self.fields:
                self.fields["code"].disabled = True
        kinds = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in PLACEHOLDERS.items())
        if "rationale" in self.fields:
            self.fields["rationale"].help_text = _("Placeholders by kind — %(kinds)s") % {
                "kinds": kinds
            }

    def clean_parameters(self) -> Any:
        raw = self.cleaned_data["parameters"]
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": error}) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        code = cleaned.get("code")
        if self.instance.pk is None and Rule.objects.filter(code=code).exists():
            self.add_error("code", _("A rule with this code exists: edit it to add a version."))
            return cleaned
        try:
            self.rule_data = check_rule({**cleaned, "code": cleaned.get("code")})
        except RuleError as error:
            for problem in error.problems:
                field = problem.split(".", 1)[0].split(":", 1)[0]
                self.add_error(field if field in self.fields else None, problem)
        return cleaned

    def validate_unique(self) -> None:
        # The next version is numbered when saved (`do_save_rule_version`), not here.
        return
