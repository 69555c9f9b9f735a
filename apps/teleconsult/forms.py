"""Forms of the consultation pages: the in-call note, the urgent room's reason, the device check."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from apps.records.models import ClinicalNote, Sensitivity


class ConsultationNoteForm(forms.Form):
    """The consultation note written from the call screen (signed when saved)."""

    kind = forms.ChoiceField(
        label=_("Type"), choices=ClinicalNote.Kind.choices, initial=ClinicalNote.Kind.CONSULTATION
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    text = forms.CharField(
        label=_("Note"), max_length=20000, widget=forms.Textarea(attrs={"rows": 8})
    )
    sensitivity = forms.ChoiceField(label=_("Category"), choices=Sensitivity.choices)

    def __init__(self, *args: Any, allowed: frozenset[str], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "note-%s")  # unique ids on the busy call page
        super().__init__(*args, **kwargs)
        # The writer's role decides which sensitive categories they may write (records rule).
        field: Any = self.fields["sensitivity"]
        field.choices = [(v, label) for v, label in Sensitivity.choices if v in allowed]
        field.initial = Sensitivity.NORMAL


class UrgentRoomForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=300, required=False)


def safe_next(value: Any, host: str) -> str:
    """A same-site path to go on to after the device check, or "" (never an open redirect)."""
    if not isinstance(value, str) or not value.startswith("/consult/"):
        return ""
    if ".." in value or "\\" in value or "//" in value:
        return ""
    if not url_has_allowed_host_and_scheme(value, allowed_hosts={host}, require_https=False):
        return ""
    return value
