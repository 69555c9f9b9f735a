"""Demo conversations (seed_demo; idempotent; after the records demo, which makes the teams).

- Marie Dubois (the demo patient) and her care team: a wound photo she sent two working days
  ago, answered by the nurse (the photo can be filed into the record); a prescription renewal
  answered and resolved last week; a question she sent just now, awaiting an answer.
- Luca Bernasconi, in the team's triage inbox: shortness of breath (unassigned, marked urgent)
  and an inhaler renewal (unassigned).
- A staff-only case discussion about Élise Rochat (no portal account) in which the physician
  mentions the nurse, who answered.

Everything goes through the services (access rule, audit, notifications, live events). Past
conversations are then dated back to opening hours; they are posted with the opening hours set
to "always" so that no automatic reply written now ends up in them. The new ones are posted as
they come: an automatic reply is there when the demo is seeded outside opening hours, as it
would be.
A conversation is recognised by its patient and subject and made once.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.utils import override_settings
from django.utils import timezone

from apps.accounts.models import User
from apps.records.models import Patient

from .access import ThreadAccess, thread_access
from .models import Message, Participant, Thread, Topic
from .services import hours
from .services.threads import (
    do_mark_read,
    do_post_message,
    do_start_thread,
)
from .services.triage import (
    do_assign,
    do_resolve,
    do_set_urgency,
)

ALWAYS_OPEN = (frozenset(range(1, 8)), dt.time(0, 0), dt.time(23, 59, 59))

# One step: (who, when, text, with the wound photo, mentioned handles).
Step = tuple[str, dt.datetime, str, bool, Sequence[str]]


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    marie = Patient.objects.filter(user=users["patient"]).first()
    luca = Patient.objects.filter(user=users["patient2"]).first()
    elise = Patient.objects.filter(ahv_number="756.5588.2213.41").first()
    if marie is None or luca is None or elise is None:
        return  # the records demo makes the charts and their care teams first
    _past_conversations(users, marie, elise)
    _new_conversations(users, marie, luca)


# ---------------------------------------------------------------------------------------------
# When


def working_time(days_back: int, hour: int, minute: int) -> dt.datetime:
    """`hour`:`minute` on the opening day `days_back` (1 or more) opening days before today."""
    days, _opens, _closes = settings.MESSAGING_OPENING_HOURS
    day = timezone.localdate()
    while days_back:
        day -= dt.timedelta(days=1)
        days_back -= day.isoweekday() in days
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def _access(thread: Thread, user: User) -> ThreadAccess:
    """The user's access through the messaging rule (the demo cast is on the care teams)."""
    access = thread_access(user, thread)
    if access is None:
        raise PermissionError(f"{user} cannot see conversation {thread.pk}")
    return access


def _subjects(patient: Patient) -> set[str]:
    """The subjects of the patient's conversations (encrypted: compared here, not in SQL)."""
    return {thread.subject for thread in Thread.objects.filter(patient=patient)}


def _date_back(
    thread: Thread,
    messages: list[Message],
    times: list[dt.datetime],
    readers: Sequence[User] = (),
) -> None:
    """Give the conversation's messages and markers the scripted times.

    Each participant has read up to their own last message; `readers` read it all, a little
    after the last message.
    """
    for message, at in zip(messages, times, strict=True):
        Message.objects.filter(pk=message.pk).update(sent_at=at)
    thread.refresh_from_db()
    now = timezone.now()
    end = min(times[-1] + dt.timedelta(minutes=25), now)
    changes: dict[str, Any] = {"created_at": times[0], "last_message_at": times[-1]}
    if thread.response_due_at is not None:
        # The answer is due from the first message of the patient's last run of messages.
        waiting = times[-1]
        for message, at in reversed(list(zip(messages, times, strict=True))):
            if message.author is None or not message.author.is_patient:
                break
            waiting = at
        changes["response_due_at"] = hours.response_due(waiting)
    if thread.resolved_at is not None:
        changes["resolved_at"] = end
    Thread.objects.filter(pk=thread.pk).update(**changes)
    own: dict[int, dt.datetime] = {}
    for message, at in zip(messages, times, strict=True):
        if message.author_id is not None:
            own[message.author_id] = at
    for user in readers:
        own[user.pk] = end
    for participant in Participant.objects.filter(thread=thread):
        read_at = own.get(participant.user_id)
        Participant.objects.filter(pk=participant.pk).update(
            last_read_at=read_at, joined_at=min(times[0], read_at or times[0])
        )


def _converse(
    users: dict[str, User],
    patient: Patient,
    topic: str,
    subject: str,
    steps: list[Step],
    *,
    past: bool = False,
) -> tuple[Thread, list[Message]]:
    """Start the conversation with the first step and post the others, through the services.

    A `past` conversation is posted as if the team were always there: it is dated back to
    opening hours afterwards, and an automatic reply made now would not fit it.
    """
    if past:
        with override_settings(MESSAGING_OPENING_HOURS=ALWAYS_OPEN):
            return _converse(users, patient, topic, subject, steps)
    first, *rest = steps
    handle, _at, text, with_photo, mentions = first
    author = users[handle]
    thread = do_start_thread(
        author,
        topic=topic,
        subject=subject,
        body=text,
        files=[wound_photo()] if with_photo else [],
        patient_id=patient.pk,
        mention_ids=[users[m].pk for m in mentions],
    )
    messages = list(Message.objects.filter(thread=thread, automatic=False))
    for handle, _at, text, with_photo, mentions in rest:
        messages.append(
            do_post_message(
                _access(thread, users[handle]),
                body=text,
                files=[wound_photo()] if with_photo else [],
                mention_ids=[users[m].pk for m in mentions],
            )
        )
    return thread, messages


# ---------------------------------------------------------------------------------------------
# The conversations


def _past_conversations(users: dict[str, User], marie: Patient, elise: Patient) -> None:
    done = _subjects(marie)
    subject = "Plaie au pied droit"
    if subject not in done:
        steps: list[Step] = [
            (
                "patient",
                working_time(2, 9, 12),
                "Bonjour, voici une photo de la plaie au pied droit. Elle me semble plus "
                "rouge qu'hier et un peu chaude. Dois-je m'inquiéter ?",
                True,
                (),
            ),
            (
                "nurse",
                working_time(2, 10, 3),
                "Bonjour Madame Dubois, merci pour la photo. La rougeur reste autour de la "
                "plaie et il n'y a pas d'écoulement : continuez le pansement chaque jour.\n"
                "Si la rougeur s'étend, si vous avez de la fièvre ou si la douleur "
                "augmente, appelez-nous. Envoyez-nous une nouvelle photo vendredi.",
                False,
                (),
            ),
        ]
        thread, messages = _converse(users, marie, Topic.WOUND, subject, steps, past=True)
        do_assign(_access(thread, users["nurse"]), users["nurse"].pk)
        do_mark_read(_access(thread, users["patient"]))
        _date_back(thread, messages, [step[1] for step in steps], [users["patient"]])

    subject = "Renouvellement de la metformine"
    if subject not in done:
        steps = [
            (
                "patient",
                working_time(7, 8, 40),
                "Bonjour Docteur, il me reste des comprimés de metformine pour une "
                "semaine. Pouvez-vous renouveler l'ordonnance ?",
                False,
                (),
            ),
            (
                "physician",
                working_time(7, 11, 20),
                "Bonjour Madame Dubois, l'ordonnance est renouvelée pour trois mois, vous "
                "pouvez la retirer à votre pharmacie dès cet après-midi.",
                False,
                (),
            ),
            ("patient", working_time(7, 12, 5), "Merci beaucoup, bonne journée !", False, ()),
        ]
        thread, messages = _converse(users, marie, Topic.RENEWAL, subject, steps, past=True)
        access = _access(thread, users["physician"])
        do_assign(access, users["physician"].pk)
        do_mark_read(access)
        do_resolve(access)
        _date_back(thread, messages, [step[1] for step in steps], [users["physician"]])

    subject = "Prise de poids, adaptation du diurétique"
    if subject not in _subjects(elise):
        steps = [
            (
                "physician",
                working_time(2, 16, 30),
                "Mme Rochat a pris 2 kg en trois jours selon sa balance connectée. "
                "@Sophie Meier, peux-tu passer demain matin contrôler les œdèmes et la "
                "tension ? J'envisage d'augmenter le torasémide.",
                False,
                ("nurse",),
            ),
            (
                "nurse",
                working_time(1, 9, 10),
                "Passée ce matin : œdèmes des chevilles ++, poids 71,4 kg, TA 128/76, pas de "
                "dyspnée au repos. Je te laisse adapter, je la rappelle demain.",
                False,
                (),
            ),
        ]
        thread, messages = _converse(users, elise, Topic.CASE, subject, steps, past=True)
        do_mark_read(_access(thread, users["physician"]))
        _date_back(thread, messages, [step[1] for step in steps], [users["physician"]])


def _new_conversations(users: dict[str, User], marie: Patient, luca: Patient) -> None:
    """Sent just now: they wait in the team's triage inbox."""
    now = timezone.now()
    subject = "Contrôle de tension avant le rendez-vous"
    if subject not in _subjects(marie):
        _converse(
            users,
            marie,
            Topic.QUESTION,
            subject,
            [
                (
                    "patient",
                    now,
                    "Bonjour, faut-il que je mesure ma tension à jeun le matin du prochain "
                    "rendez-vous, ou est-ce que je peux prendre mes médicaments avant ?",
                    False,
                    (),
                )
            ],
        )
    done = _subjects(luca)
    subject = "Essoufflement à l'effort"
    if subject not in done:
        thread, _messages = _converse(
            users,
            luca,
            Topic.SYMPTOM,
            subject,
            [
                (
                    "patient2",
                    now,
                    "Bonjour, depuis deux jours je suis essoufflé en montant l'escalier, plus "
                    "que d'habitude, et mes chevilles sont gonflées le soir.",
                    False,
                    (),
                )
            ],
        )
        do_set_urgency(_access(thread, users["nurse"]), Thread.Urgency.URGENT)
    subject = "Renouvellement du spray Ventolin"
    if subject not in done:
        _converse(
            users,
            luca,
            Topic.RENEWAL,
            subject,
            [
                (
                    "patient2",
                    now,
                    "Bonjour, mon spray Ventolin est bientôt vide. Pourriez-vous m'envoyer une "
                    "nouvelle ordonnance ?",
                    False,
                    (),
                )
            ],
        )


# ---------------------------------------------------------------------------------------------
# The photo


def wound_photo() -> SimpleUploadedFile:
    """A phone photo of a small wound on skin: a synthetic but plausible JPEG with EXIF data
    (which the upload cleaning strips)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(8)  # noqa: S311 - a picture, not a secret
    width, height = 800, 600
    image = Image.new("RGB", (width, height), (222, 176, 148))
    draw = ImageDraw.Draw(image)
    # Skin texture: faint blotches.
    for _ in range(400):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(4, 18)
        shade = rng.randrange(-14, 10)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(222 + shade, 176 + shade, 148 + shade))
    # The inflamed halo, then the wound bed and a darker crust.
    draw.ellipse((250, 170, 560, 430), fill=(214, 128, 112))
    image = image.filter(ImageFilter.GaussianBlur(24))
    draw = ImageDraw.Draw(image)
    draw.ellipse((335, 240, 475, 355), fill=(168, 58, 52))
    draw.ellipse((370, 268, 440, 322), fill=(120, 40, 36))
    draw.ellipse((395, 280, 425, 300), fill=(196, 150, 96))
    image = image.filter(ImageFilter.GaussianBlur(2))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneCam 12"  # Model
    out = io.BytesIO()
    image.save(out, "JPEG", quality=86, exif=exif)
    return SimpleUploadedFile("plaie-pied-droit.jpg", out.getvalue(), content_type="image/jpeg")
