from __future__ import annotations

from django import forms
from django.contrib.auth.forms import SetPasswordForm
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from .models import User

phone_validator = RegexValidator(
    r"^\+[1-9]\d{6,14}$",
    _("Enter the number in international format, for example +41 79 123 45 67."),
)


class OtpTokenForm(forms.Form):
    token = forms.CharField(
        label=_("Code"),
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
                "spellcheck": "false",
            }
        ),
        help_text=_("The 6-digit code from your authenticator app, or one of your backup codes."),
    )


class AcceptInvitationForm(SetPasswordForm):
    """Choose a password (validated by the configured password validators)."""


class ProfileForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ["first_name", "last_name", "phone", "preferred_language"]
        widgets = {
            "phone": forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
            "first_name": forms.TextInput(attrs={"autocomplete": "given-name"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "family-name"}),
        }

    def clean_phone(self) -> str:
        phone = "".join(self.cleaned_data["phone"].split())
        if phone:
            phone_validator(phone)
        return phone
