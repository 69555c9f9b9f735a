from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.notifications.models import Notification, Preference
from tests.conftest import verified_client

pytestmark = pytest.mark.django_db


def make_notifications(user: User, n: int) -> list[Notification]:
    return Notification.objects.bulk_create(
        [Notification(user=user, kind="announcement", title=f"N{i}") for i in range(n)]
    )


def test_the_inbox_lists_only_my_notifications(patient: User, patient2: User) -> None:
    make_notifications(patient, 2)
    make_notifications(patient2, 1)

    page = verified_client(patient).get("/notifications/")

    assert [n.user_id for n in page.context["page"]] == [patient.pk, patient.pk]


def test_someone_elses_notification_is_404(patient: User, patient2: User) -> None:
    (theirs,) = make_notifications(patient2, 1)
    client = verified_client(patient)

    assert client.post(f"/notifications/{theirs.pk}/read/").status_code == 404
    assert client.get(f"/api/v1/notifications/{theirs.pk}/").status_code == 404
    assert client.post(f"/api/v1/notifications/{theirs.pk}/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_anonymous_visitors_get_nothing() -> None:
    assert Client().get("/notifications/").status_code == 302
    assert Client().get("/api/v1/notifications/").status_code == 401


def test_marking_read_with_htmx_returns_the_updated_item(patient: User) -> None:
    (mine,) = make_notifications(patient, 1)

    response = verified_client(patient).post(
        f"/notifications/{mine.pk}/read/", HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert f'id="notification-{mine.pk}"' in response.content.decode()
    mine.refresh_from_db()
    assert mine.read_at is not None


def test_the_api_lists_and_marks_all_read(patient: User) -> None:
    make_notifications(patient, 3)
    client = verified_client(patient)

    listing = client.get("/api/v1/notifications/?unread=1").json()
    after = client.post("/api/v1/notifications/read-all/").json()

    assert listing["count"] == 3
    assert after == {"unread_count": 0}


def test_preferences_are_saved(patient: User) -> None:
    client = verified_client(patient)

    client.post("/notifications/preferences/", {"appointment:sms": "on"})

    saved = Preference.objects.get(user=patient, kind="appointment")
    assert (saved.email, saved.sms) == (False, True)
    assert not Preference.objects.filter(user=patient, kind="device.alert").exists()


@pytest.mark.parametrize("path", ["/", "/notifications/", "/notifications/preferences/"])
def test_pages_use_a_constant_number_of_queries(
    patient: User, path: str, django_assert_max_num_queries: Any
) -> None:
    client = verified_client(patient)
    make_notifications(patient, 1)
    client.get(path)  # warm up the session
    with django_assert_max_num_queries(10) as few:
        client.get(path)
    make_notifications(patient, 40)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(path)

    assert response.status_code == 200


def test_one_entry_renders_for_live_updates_and_only_for_its_owner(
    patient: User, patient2: User
) -> None:
    (mine,) = make_notifications(patient, 1)

    own = verified_client(patient).get(f"/notifications/{mine.pk}/")
    other = verified_client(patient2).get(f"/notifications/{mine.pk}/")

    assert own.status_code == 200
    assert f'id="notification-{mine.pk}"' in own.content.decode()
    assert other.status_code == 404
