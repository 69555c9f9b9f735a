"""Forms of the documents pages (upload, list filter)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.template.defaultfilters import filesizeformat
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..models import DocumentReference, Sensitivity

ACCEPT = ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"


class DocumentUploadForm(forms.Form):
    """`allowed`: the uploader's sensitivity categories, or None for a patient (no choice)."""

    file = forms.FileField(
        label=_("File"),
        widget=forms.FileInput(attrs={"accept": ACCEPT}),
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    category = forms.ChoiceField(
        label=_("Kind of document"),
        choices=[(v, capfirst(label)) for v, label in DocumentReference.Category.choices],
    )
    sensitivity = forms.ChoiceField(label=_("Sensitivity"), choices=Sensitivity.choices)

    def __init__(
        self, *args: Any, allowed: frozenset[str] | None, max_bytes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = _(
            "A PDF document, or a JPEG or PNG picture, up to %(limit)s. Location and camera "
            "details are removed from pictures."
        ) % {"limit": filesizeformat(max_bytes)}
        if allowed is None:
            del self.fields["sensitivity"]
        else:
            field = cast(forms.ChoiceField, self.fields["sensitivity"])
            field.choices = [(v, capfirst(lbl)) for v, lbl in Sensitivity.choices if v in allowed]


class DocumentFilterForm(forms.Form):
    category = forms.ChoiceField(
        label=_("Kind of document"),
        required=False,
        choices=[("", _("All"))]
        + [(v, capfirst(label)) for v, label in DocumentReference.Category.choices],
    )
