"""The clinician's review of proposed charges in the clinic: the list of acts to review with
their explanations, and an act's page where quantities change, codes are added, items are
cancelled and the charges confirmed — rule violations shown with their explanation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import BillingProfile, ChargeItem, TariffCode
from apps.billing.services.capture import propose_for_device, propose_for_encounter
from apps.devices.models import Device
from apps.records.models import Encounter, Patient

from .pages_support import client_for


@pytest.fixture
def doctor(clinician: User) -> Client:
    return client_for(clinician)


@pytest.fixture
def encounter(
    billing_profile: BillingProfile,
    codes: dict[str, TariffCode],
    record: Patient,
    make_encounter: Callable[..., Encounter],
) -> Encounter:
    """A finished 17-minute video call whose charges were proposed (base + 3 × 5 minutes)."""
    made = make_encounter(record, minutes=17, reason="Contrôle tension")
    propose_for_encounter(made)
    return made


def charges(encounter: Encounter) -> dict[str, ChargeItem]:
    return {charge.code.code: charge for charge in ChargeItem.objects.filter(encounter=encounter)}


def url(encounter: Encounter) -> str:
    return f"/clinic/charges/encounter/{encounter.pk}/"


def test_the_review_list_groups_the_proposed_charges_by_act_with_explanations(
    doctor: Client, clinician: User, encounter: Encounter, record: Patient
) -> None:
    response = doctor.get("/clinic/charges/")
    assert response.status_code == 200
    [act] = response.context["acts"]
    assert act["encounter"] == encounter
    assert act["items"] == 2
    assert {charge.code.code for charge in act["charges"]} == {"AA.00.0010", "AA.00.0020"}
    page = response.content.decode()
    assert record.full_name in page
    assert url(encounter) in page
    assert charges(encounter)["AA.00.0020"].explanation.split("\n")[0][:20] in page
    listing = AuditEvent.objects.filter(actor_id=clinician.pk, action=Action.READ)
    assert [event.detail["what"] for event in listing] == ["charges-review"]


def test_the_act_page_shows_the_charges_and_the_codes_that_may_be_added(
    doctor: Client, encounter: Encounter
) -> None:
    response = doctor.get(url(encounter))
    assert response.status_code == 200
    page = response.content.decode()
    assert "AA.00.0010" in page and "AA.00.0020" in page
    codes = {code.code for code in response.context["add_form"].fields["code"].queryset}
    # Video codes, automatic or not; never the in-person or monitoring ones.
    assert codes == {"AA.00.0010", "AA.00.0020", "RP.01"}


def test_a_quantity_above_the_maximum_is_refused_with_the_explanation(
    doctor: Client, encounter: Encounter
) -> None:
    more = charges(encounter)["AA.00.0020"]
    response = doctor.post(
        url(encounter),
        {
            "op": "quantity",
            "charge": more.pk,
            f"q{more.pk}-charge": more.pk,
            f"q{more.pk}-quantity": "9",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Not accepted:" in page
    assert "AA.00.0020" in "".join(response.context["errors"])
    # The quantity typed stays in its field.
    assert 'value="9"' in page
    more.refresh_from_db()
    assert more.quantity == 3


def test_changing_a_quantity_reprices_the_item(doctor: Client, encounter: Encounter) -> None:
    more = charges(encounter)["AA.00.0020"]
    response = doctor.post(
        url(encounter),
        {
            "op": "quantity",
            "charge": more.pk,
            f"q{more.pk}-charge": more.pk,
            f"q{more.pk}-quantity": "2",
        },
    )
    assert response.status_code == 302
    more.refresh_from_db()
    assert more.quantity == 2
    assert more.amount == (more.unit_price * 2).quantize(more.amount)


def test_adding_a_code_and_a_violating_one(
    doctor: Client, encounter: Encounter, codes: dict[str, TariffCode]
) -> None:
    # a written report may be added
    added = doctor.post(url(encounter), {"op": "add", "code": codes["report"].pk, "quantity": "1"})
    assert added.status_code == 302
    assert "RP.01" in charges(encounter)
    # a second base code breaks its maximum of 1: refused on the form, with the reason
    refused = doctor.post(
        url(encounter), {"op": "add", "code": codes["video_base"].pk, "quantity": "1"}
    )
    assert refused.status_code == 400
    form = refused.context["add_form"]
    assert form.non_field_errors()
    assert ChargeItem.objects.filter(encounter=encounter, code=codes["video_base"]).count() == 1
    # an in-person code is not offered for a video consultation
    wrong = doctor.post(url(encounter), {"op": "add", "code": codes["office"].pk, "quantity": "1"})
    assert wrong.status_code == 400
    assert "code" in wrong.context["add_form"].errors


def test_cancelling_an_item(doctor: Client, encounter: Encounter) -> None:
    more = charges(encounter)["AA.00.0020"]
    assert doctor.post(url(encounter), {"op": "cancel", "charge": more.pk}).status_code == 302
    more.refresh_from_db()
    assert more.status == ChargeItem.Status.CANCELLED


def test_an_item_of_another_act_cannot_be_changed_from_this_page(
    doctor: Client,
    encounter: Encounter,
    record: Patient,
    make_encounter: Callable[..., Encounter],
) -> None:
    other = make_encounter(record, minutes=8)
    propose_for_encounter(other)
    foreign = charges(other)["AA.00.0010"]
    response = doctor.post(url(encounter), {"op": "cancel", "charge": foreign.pk})
    assert response.status_code == 400
    foreign.refresh_from_db()
    assert foreign.status == ChargeItem.Status.PROPOSED


def test_confirming_the_charges_sends_them_to_billing(
    doctor: Client, encounter: Encounter, billing_user: User
) -> None:
    response = doctor.post(url(encounter), {"op": "confirm"}, follow=True)
    assert response.redirect_chain[-1][0] == "/clinic/charges/"
    assert "2 charges confirmed" in response.content.decode()
    assert {c.status for c in charges(encounter).values()} == {ChargeItem.Status.CONFIRMED}
    assert response.context["acts"] == []
    # Billing staff now see them to invoice.
    rows = client_for(billing_user).get("/billing/").context["rows"]
    assert [row["items"] for row in rows] == [2]


def test_confirming_charges_that_break_a_rule_is_refused_with_each_reason(
    doctor: Client,
    encounter: Encounter,
    codes: dict[str, TariffCode],
    make_charge: Callable[..., ChargeItem],
    record: Patient,
) -> None:
    # given an in-person code slipped into the video call (incompatible, wrong context)
    make_charge(record, code="office", status=ChargeItem.Status.PROPOSED, encounter=encounter)
    # when
    response = doctor.post(url(encounter), {"op": "confirm"})
    # then
    assert response.status_code == 400
    errors = response.context["errors"]
    assert len(errors) >= 2
    assert any("AA.00.0030" in error for error in errors)
    assert {c.status for c in charges(encounter).values()} == {ChargeItem.Status.PROPOSED}


def test_a_monitoring_period_is_reviewed_on_its_own_page(
    doctor: Client,
    billing_profile: BillingProfile,
    codes: dict[str, TariffCode],
    record: Patient,
    clinician: User,
) -> None:
    retired = timezone.now() - dt.timedelta(hours=2)
    device = Device.objects.create(
        kind="blood_pressure",
        patient=record,
        secret="not-used",
        registered_by=clinician,
        registered_at=retired - dt.timedelta(days=12),
        status=Device.Status.RETIRED,
        retired_at=retired,
    )
    assert propose_for_device(device)
    listing = doctor.get("/clinic/charges/")
    assert f"/clinic/charges/device/{device.pk}/" in listing.content.decode()
    page = doctor.get(f"/clinic/charges/device/{device.pk}/")
    assert page.status_code == 200
    assert "TM.01" in page.content.decode()
    confirmed = doctor.post(f"/clinic/charges/device/{device.pk}/", {"op": "confirm"})
    assert confirmed.status_code == 302
    assert set(ChargeItem.objects.filter(device=device).values_list("status", flat=True)) == {
        ChargeItem.Status.CONFIRMED
    }


def test_billing_staff_may_follow_up_the_review_too(
    encounter: Encounter, billing_user: User, billing_profile: Any
) -> None:
    staff = client_for(billing_user)
    assert len(staff.get("/clinic/charges/").context["acts"]) == 1
    page = staff.get(url(encounter))
    assert page.status_code == 200
    # Confirming vouches for the act: only the care team does it.
    assert b'value="confirm"' not in page.content
    refused = staff.post(url(encounter), {"op": "confirm"})
    assert b"care team can confirm" in refused.content
    assert not ChargeItem.objects.filter(encounter=encounter, status="confirmed").exists()
