"""The admin lists devices without their secrets; messages and dead letters are read-only."""

from __future__ import annotations

from apps.accounts.models import User
from apps.devices.models import DeadLetter, Device
from apps.devices.services.ingest import RawMessage, ingest
from tests.conftest import verified_client


def test_device_admin_never_shows_the_secret(
    device_and_secret: tuple[Device, str], admin_user: User
) -> None:
    device, secret = device_and_secret
    client = verified_client(admin_user)
    listing = client.get("/admin/devices/device/")
    page = client.get(f"/admin/devices/device/{device.pk}/change/")
    assert listing.status_code == page.status_code == 200
    assert device.device_id in listing.content.decode()
    assert secret not in page.content.decode()
    assert client.get("/admin/devices/device/add/").status_code == 403


def test_dead_letters_are_read_only_and_filterable(device: Device, admin_user: User) -> None:
    ingest([RawMessage(b"junk", "http")])
    letter = DeadLetter.objects.get()
    client = verified_client(admin_user)
    listing = client.get("/admin/devices/deadletter/?reason__exact=unparseable")
    detail = client.get(f"/admin/devices/deadletter/{letter.pk}/change/")
    assert listing.status_code == detail.status_code == 200
    assert "junk" in detail.content.decode()
    assert client.get(f"/admin/devices/deadletter/{letter.pk}/delete/").status_code == 403
    assert client.get("/admin/devices/devicemessage/").status_code == 200


def test_administrators_keep_the_on_call_order_but_never_see_alerts_or_thresholds(
    admin_user: User, clinician: User, patient: User
) -> None:
    from apps.devices.models import OnCallShift

    client = verified_client(admin_user)
    form = client.get("/admin/devices/oncallshift/add/")
    assert form.status_code == 200
    choices = form.context["adminform"].form.fields["user"].queryset
    assert clinician in choices and patient not in choices

    response = client.post(
        "/admin/devices/oncallshift/add/",
        {
            "user": clinician.pk,
            "rank": 1,
            "starts_at_0": "2026-12-01",
            "starts_at_1": "08:00:00",
            "ends_at_0": "2026-12-01",
            "ends_at_1": "20:00:00",
        },
    )

    assert response.status_code == 302
    assert OnCallShift.objects.get().user == clinician
    assert client.get("/admin/devices/alert/").status_code == 404
    assert client.get("/admin/devices/thresholdrule/").status_code == 404
