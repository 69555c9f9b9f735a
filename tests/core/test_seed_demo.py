from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Role, User
from apps.notifications.models import Notification


@pytest.mark.django_db
def test_seed_demo_creates_the_cast_once(settings: Any) -> None:
    settings.DEBUG = True

    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    counts = (User.objects.count(), Notification.objects.count())
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert (User.objects.count(), Notification.objects.count()) == counts
    roles = set(User.objects.values_list("role", flat=True))
    assert roles == set(Role.values)


@pytest.mark.django_db
def test_seed_demo_refuses_in_production(settings: Any) -> None:
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not User.objects.exists()
