from __future__ import annotations

from django import forms
from django.contrib.auth.forms import SetPasswordForm
from django.utils.translation import gettext_lazy as _


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
