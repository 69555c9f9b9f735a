"""Forms of the messaging pages: a new conversation, a reply, the team's triage actions.

The forms only parse; the rules (who may write what, which files are accepted) are the
services', whose MessagingError is shown on the form so that nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User

from .models import PATIENT_TOPICS, STAFF_TOPICS, Thread

# What the file pickers offer; the records app decides by content what is really accepted.
ACCEPT = "image/*,application/pdf"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (none is fine: a message may be text only)."""

    widget = MultipleFileInput

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        if not data:
            return []
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items if item]


def _topic_choices(topics: Sequence[Any]) -> list[tuple[str, Any]]:
    return [(topic.value, topic.label) for topic in topics]


class MessageFields(forms.Form):
    """The body and the files of a message, shared by every form that writes one."""

    body = forms.CharField(
        label=_("Message"),
        required=False,
        max_length=10_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    attachments = MultipleFileField(
        label=_("Attach photos or PDF documents"),
        widget=MultipleFileInput(attrs={"accept": ACCEPT, "multiple": True}),
    )
    photo = MultipleFileField(
        label=_("Take a photo"),
        # The camera opens directly on a phone; elsewhere it is an ordinary file picker.
        widget=forms.FileInput(attrs={"accept": "image/*", "capture": "environment"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["attachments"].help_text = _(
            "Up to %(n)s files of %(limit)s each: JPEG or PNG pictures, or PDF documents. "
            "Location and camera details are removed from pictures."
        ) % {
            "n": settings.MESSAGING_MAX_FILES,
            "limit": filesizeformat(settings.RECORDS_MAX_UPLOAD_BYTES),
        }

    def all_files(self) -> list[UploadedFile]:
        data = self.cleaned_data
        return [*data.get("attachments", []), *data.get("photo", [])]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("body") or "").strip() and not self.all_files():
            self.add_error("body", _("Write a message or attach a file."))
        if len(self.all_files()) > settings.MESSAGING_MAX_FILES:
            self.add_error(
                "attachments",
                _("At most %(n)s files can be attached to one message.")
                % {"n": settings.MESSAGING_MAX_FILES},
            )
        return data


def _mention_field(team: Sequence[User], me: User) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=_("Mention colleagues"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(str(u.pk), u.get_full_name() or u.email) for u in team if u.pk != me.pk],
        help_text=_("They are told about this message, even if they are not assigned."),
    )


class NewThreadForm(MessageFields):
    """A patient's new conversation with their care team."""

    field_order = ["topic", "subject", "body", "attachments", "photo"]

    topic = forms.ChoiceField(label=_("Topic"), choices=_topic_choices(PATIENT_TOPICS))
    subject = forms.CharField(label=_("Subject"), max_length=200)


class ReplyForm(MessageFields):
    """A message in an existing conversation; the team may mention colleagues."""

    def __init__(
        self, *args: Any, team: Sequence[User] | None = None, me: User | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("auto_id", "reply-%s")
        super().__init__(*args, **kwargs)
        if team is not None and me is not None:
            field = _mention_field(team, me)
            if field.choices:
                self.fields["mentions"] = field


class StaffThreadForm(MessageFields):
    """A conversation started by the team: a staff-only discussion or a message to the patient."""

    STAFF = "staff"
    PATIENT = "patient"

    field_order = ["kind", "topic", "subject", "body", "attachments", "photo", "mentions"]

    kind = forms.ChoiceField(choices=[(STAFF, STAFF), (PATIENT, PATIENT)], widget=forms.HiddenInput)
    topic = forms.ChoiceField(label=_("Topic"))
    subject = forms.CharField(label=_("Subject"), max_length=200)

    def __init__(
        self, *args: Any, kind: str, team: Sequence[User], me: User, **kwargs: Any
    ) -> None:
        kwargs.setdefault("auto_id", f"{kind}-%s")
        kwargs.setdefault("initial", {"kind": kind})
        super().__init__(*args, **kwargs)
        topics = STAFF_TOPICS if kind == self.STAFF else PATIENT_TOPICS
        cast(forms.ChoiceField, self.fields["topic"]).choices = _topic_choices(topics)
        field = _mention_field(team, me)
        if field.choices:
            self.fields["mentions"] = field


class AssignForm(forms.Form):
    """Who answers: a member of the care team, or nobody."""

    assignee = forms.ChoiceField(label=_("Assigned to"), required=False)

    def __init__(self, *args: Any, team: Sequence[User], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "assign-%s")
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["assignee"]).choices = [
            ("", _("Nobody")),
            *[(str(u.pk), u.get_full_name() or u.email) for u in team],
        ]


class UrgencyForm(forms.Form):
    urgency = forms.ChoiceField(choices=Thread.Urgency.choices)


class FileForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200, required=False)
