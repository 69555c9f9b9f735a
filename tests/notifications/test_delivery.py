"""Email and SMS delivery by preference, idempotent, without clinical content, through Celery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail

from apps.accounts.models import User
from apps.notifications.models import Delivery, Notification
from apps.notifications.services import deliver, notify, set_preferences
from apps.notifications.sms import LocmemSmsBackend, SmsError

pytestmark = pytest.mark.django_db(transaction=True)


def test_email_by_default_for_kinds_that_want_it(patient: User) -> None:
    notify(patient, "message", "Nouveau message de votre équipe", link="/messages/1/")

    (email,) = mail.outbox
    assert email.to == [patient.email]
    assert email.subject == "Nouveau message de votre équipe"
    assert "http://127.0.0.1:8000/messages/1/" in email.body
    assert LocmemSmsBackend.outbox == []  # no phone number


def test_sms_when_chosen_and_a_number_is_known(patient: User) -> None:
    patient.phone = "+41790000000"
    patient.save()
    set_preferences(patient, {"appointment": (False, True)})

    notify(patient, "appointment", "Rappel de rendez-vous", link="/appointments/")

    assert mail.outbox == []
    assert LocmemSmsBackend.outbox == [
        ("+41790000000", "Rappel de rendez-vous — http://127.0.0.1:8000/appointments/")
    ]


def test_in_app_only_when_both_channels_are_off(patient: User) -> None:
    set_preferences(patient, {"message": (False, False)})

    notify(patient, "message", "Silencieux")

    assert mail.outbox == []
    assert Notification.objects.filter(user=patient).count() == 1


def test_delivering_twice_sends_once(patient: User) -> None:
    notification = notify(patient, "message", "Once")

    deliver(notification.pk)

    assert len(mail.outbox) == 1
    assert Delivery.objects.get(notification=notification).status == Delivery.Status.SENT


class BrokenSms(LocmemSmsBackend):
    def send(self, to: str, text: str) -> None:
        raise SmsError("gateway down")


def test_a_failed_channel_is_recorded_and_retried_alone(patient: User, settings: Any) -> None:
    patient.phone = "+41790000000"
    patient.save()
    set_preferences(patient, {"appointment": (True, True)})
    settings.SMS_BACKEND = "tests.notifications.test_delivery.BrokenSms"
    from virtualhospital.celery import app

    app.conf.task_eager_propagates = False
    notification = notify(patient, "appointment", "Rappel")

    sms = Delivery.objects.get(notification=notification, channel="sms")
    assert sms.status == Delivery.Status.FAILED
    assert sms.attempts == 6  # first try and five retries
    assert "gateway down" in sms.last_error
    assert len(mail.outbox) == 1  # email sent once, not on every retry


def test_a_user_cannot_choose_kinds_meant_for_others(patient: User) -> None:
    from apps.notifications.services import UnknownKind

    with pytest.raises(UnknownKind):
        set_preferences(patient, {"device.alert": (True, True)})


@pytest.fixture
def celery_worker(settings: Any) -> Iterator[None]:
    """A real worker thread consuming from the Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from virtualhospital.celery import app

    if not settings.REDIS_URL:
        from tests.conftest import in_ci

        if in_ci():
            pytest.fail("CI must run with REDIS_URL")
        pytest.skip("needs Redis (make test uses it)")
    app.conf.task_always_eager = False
    with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        yield
    app.conf.task_always_eager = True


def test_a_real_worker_delivers_through_the_broker(patient: User, celery_worker: None) -> None:
    import time

    notification = notify(patient, "message", "Par le courtier")

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if Delivery.objects.filter(notification=notification, status="sent").exists():
            break
        time.sleep(0.05)
    assert Delivery.objects.get(notification=notification).status == Delivery.Status.SENT
    assert [message.subject for message in mail.outbox] == ["Par le courtier"]
