"""The review of proposed charges: confirm, change a quantity, add a code, cancel; rule
violations refused with their reasons; invoiced charges frozen; outsiders get a 404."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.http import Http404
from django.utils import timezone, translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import Action, AuditEvent, Outcome
from apps.billing.models import (
    BillingProfile,
    ChargeItem,
    Context,
    Invoice,
    TariffCode,
)
from apps.billing.services import BillingError
from apps.billing.services.capture import propose_for_device, propose_for_encounter
from apps.billing.services.review import (
    act_charges,
    charges_to_review,
    do_add_charge,
    do_cancel_charge,
    do_change_quantity,
    do_confirm_charges,
    get_device_for_review,
    get_encounter_for_review,
)
from apps.billing.services.tariffs import RuleViolation
from apps.devices.models import Device
from apps.records.models import Encounter, Patient

from .conftest import VALID_FROM

D = Decimal


@pytest.fixture
def encounter(
    billing_profile: BillingProfile,
    codes: dict[str, TariffCode],
    record: Patient,
    make_encounter: Callable[..., Encounter],
) -> Encounter:
    """A finished 17-minute video call of `record` whose charges were proposed."""
    made = make_encounter(record, minutes=17)
    propose_for_encounter(made)
    return made


def _charges(encounter: Encounter) -> dict[str, ChargeItem]:
    return {c.code.code: c for c in ChargeItem.objects.filter(encounter=encounter)}


def _invoice(patient: Patient, organization: Organization) -> Invoice:
    return Invoice.objects.create(
        number="2025-000001",
        year=2025,
        sequence=1,
        patient=patient,
        organization=organization,
        recipient=Invoice.Recipient.PATIENT,
        due_date=timezone.localdate() + dt.timedelta(days=30),
        net=D("65.37"),
        vat=D("0"),
        total=D("65.35"),
        patient_share=D("65.35"),
        insurer_share=D("0"),
        amount_due=D("65.35"),
        reference="210000000003139471430009017",
    )


def _invoiced(charge: ChargeItem, organization: Organization) -> ChargeItem:
    charge.invoice = _invoice(charge.patient, organization)
    charge.status = ChargeItem.Status.INVOICED
    charge.save()
    return charge


def _denials(object_type: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=Action.DENIED, outcome=Outcome.DENIED, object_type=object_type
        ).order_by("pk")
    )


# ---------------------------------------------------------------------------------------------
# Confirm


def test_the_clinician_confirms_the_acts_charges(encounter: Encounter, clinician: User) -> None:
    charges = _charges(encounter)

    assert do_confirm_charges(clinician, [c.pk for c in charges.values()]) == 2

    for charge in ChargeItem.objects.filter(encounter=encounter):
        assert charge.status == ChargeItem.Status.CONFIRMED
        assert charge.confirmed_by == clinician
        assert charge.confirmed_at is not None
    events = AuditEvent.objects.filter(
        action=Action.UPDATE, object_type="billing.chargeitem", actor_id=clinician.pk
    )
    assert events.count() == 2
    assert {e.detail["change"] for e in events} == {"confirm"}
    assert {e.detail["via"] for e in events} == {"care-team"}


def test_confirming_again_changes_nothing(encounter: Encounter, clinician: User) -> None:
    ids = [c.pk for c in _charges(encounter).values()]
    do_confirm_charges(clinician, ids)
    assert do_confirm_charges(clinician, ids) == 0


def test_billing_staff_may_not_confirm(encounter: Encounter, billing_user: User) -> None:
    charge = _charges(encounter)["AA.00.0010"]
    with pytest.raises(BillingError, match="care team"):
        do_confirm_charges(billing_user, [charge.pk])
    charge.refresh_from_db()
    assert charge.status == ChargeItem.Status.PROPOSED


def test_confirmation_is_refused_while_the_act_breaks_a_rule(
    encounter: Encounter, clinician: User, make_charge: Callable[..., ChargeItem]
) -> None:
    # An in-person code slipped onto the video call (e.g. entered by hand before review).
    office = make_charge(
        encounter.patient, "office", status=ChargeItem.Status.PROPOSED, encounter=encounter
    )
    video = [c.pk for c in _charges(encounter).values() if c.pk != office.pk]

    with translation.override("en"), pytest.raises(RuleViolation) as error:
        do_confirm_charges(clinician, video)

    assert error.value.violations == [
        "AA.00.0030 does not apply to this kind of act (video consultation).",
        "AA.00.0010 and AA.00.0030 cannot be billed together for the same act.",
    ]
    assert str(error.value).startswith("These charges cannot be confirmed:")
    assert not ChargeItem.objects.filter(status=ChargeItem.Status.CONFIRMED).exists()


def test_cancelling_the_offending_code_lets_the_act_be_confirmed(
    encounter: Encounter, clinician: User, make_charge: Callable[..., ChargeItem]
) -> None:
    office = make_charge(
        encounter.patient, "office", status=ChargeItem.Status.PROPOSED, encounter=encounter
    )
    do_cancel_charge(clinician, office.pk)
    live = [c.pk for c in act_charges(office)]
    assert do_confirm_charges(clinician, live) == 2


def test_a_quantity_above_a_lowered_maximum_is_refused_then_mended(
    encounter: Encounter, clinician: User, codes: dict[str, TariffCode]
) -> None:
    TariffCode.objects.filter(pk=codes["video_more"].pk).update(max_quantity=2)
    more = _charges(encounter)["AA.00.0020"]

    with translation.override("en"), pytest.raises(RuleViolation) as error:
        do_confirm_charges(clinician, [more.pk])
    assert error.value.violations == ["AA.00.0020: 3 units is more than the maximum of 2 per act."]

    # Lowering the quantity mends the set even though the act was already broken.
    do_change_quantity(clinician, more.pk, 2)
    assert do_confirm_charges(clinician, [more.pk]) == 1


def test_invoiced_or_cancelled_charges_cannot_be_confirmed(
    encounter: Encounter, clinician: User, organization: Organization
) -> None:
    charges = _charges(encounter)
    _invoiced(charges["AA.00.0010"], organization)
    do_cancel_charge(clinician, charges["AA.00.0020"].pk)
    with pytest.raises(BillingError):
        do_confirm_charges(clinician, [charges["AA.00.0010"].pk])
    with pytest.raises(BillingError):
        do_confirm_charges(clinician, [charges["AA.00.0020"].pk])


# ---------------------------------------------------------------------------------------------
# Change a quantity


def test_changing_a_quantity_reprices_at_the_unit_price(
    encounter: Encounter, clinician: User
) -> None:
    more = _charges(encounter)["AA.00.0020"]

    changed = do_change_quantity(clinician, more.pk, "2")

    changed.refresh_from_db()
    assert (changed.quantity, changed.unit_price, changed.amount) == (
        D("2"),
        D("16.05"),
        D("32.10"),
    )
    assert changed.status == ChargeItem.Status.PROPOSED
    event = AuditEvent.objects.get(action=Action.UPDATE, object_id=str(more.pk))
    assert event.detail["change"] == "quantity"
    assert (event.detail["before"], event.detail["after"]) == ("3.00", "2")


def test_a_quantity_above_the_maximum_is_refused(encounter: Encounter, clinician: User) -> None:
    more = _charges(encounter)["AA.00.0020"]
    with translation.override("en"), pytest.raises(RuleViolation) as error:
        do_change_quantity(clinician, more.pk, 7)
    assert error.value.violations == ["AA.00.0020: 7 units is more than the maximum of 6 per act."]
    more.refresh_from_db()
    assert more.quantity == 3 and more.amount == D("48.15")


@pytest.mark.parametrize("quantity", ["0", "-2", "abc", "1.234", "NaN"])
def test_a_quantity_must_be_a_positive_number_with_two_decimals(
    encounter: Encounter, clinician: User, quantity: str
) -> None:
    more = _charges(encounter)["AA.00.0020"]
    with pytest.raises(BillingError):
        do_change_quantity(clinician, more.pk, quantity)
    more.refresh_from_db()
    assert more.quantity == 3


def test_an_invoiced_charge_cannot_change(
    encounter: Encounter, clinician: User, billing_user: User, organization: Organization
) -> None:
    more = _invoiced(_charges(encounter)["AA.00.0020"], organization)
    for user in (clinician, billing_user):
        with pytest.raises(BillingError):
            do_change_quantity(user, more.pk, 2)
        with pytest.raises(BillingError):
            do_cancel_charge(user, more.pk)
    more.refresh_from_db()
    assert more.status == ChargeItem.Status.INVOICED and more.quantity == 3


def test_billing_staff_may_adjust(encounter: Encounter, billing_user: User) -> None:
    more = _charges(encounter)["AA.00.0020"]
    assert do_change_quantity(billing_user, more, 1).amount == D("16.05")
    event = AuditEvent.objects.get(action=Action.UPDATE, object_id=str(more.pk))
    assert event.actor_id == billing_user.pk and event.detail["via"] == "billing"


# ---------------------------------------------------------------------------------------------
# Add a code


def test_the_clinician_adds_a_report(
    encounter: Encounter, clinician: User, codes: dict[str, TariffCode]
) -> None:
    charge = do_add_charge(
        clinician, encounter_id=encounter.pk, code_id=codes["report"].pk, quantity=1
    )

    charge.refresh_from_db()
    assert (charge.code, charge.quantity, charge.unit_price, charge.amount) == (
        codes["report"],
        D("1"),
        D("35.00"),
        D("35.00"),
    )
    assert charge.vat_rate == D("8.10")
    assert charge.status == ChargeItem.Status.PROPOSED
    assert charge.context == Context.VIDEO
    assert charge.encounter == encounter
    assert charge.performer == clinician
    assert charge.performed_at == encounter.started_at
    event = AuditEvent.objects.get(
        action=Action.CREATE, object_id=str(charge.pk), actor_id=clinician.pk
    )
    assert event.detail["change"] == "add" and event.detail["code"] == "RP.01"
    assert do_confirm_charges(clinician, [c.pk for c in act_charges(charge)]) == 3


def test_an_added_points_code_is_priced_like_a_proposal(
    encounter: Encounter, clinician: User, codes: dict[str, TariffCode]
) -> None:
    do_cancel_charge(clinician, _charges(encounter)["AA.00.0020"].pk)
    charge = do_add_charge(
        clinician, encounter_id=encounter, code_id=codes["video_more"], quantity=2
    )
    assert (charge.point_value, charge.unit_price, charge.amount) == (
        D("0.9300"),
        D("16.05"),
        D("32.10"),
    )


def test_adding_an_incompatible_code_is_refused_with_the_reasons(
    encounter: Encounter, clinician: User, codes: dict[str, TariffCode]
) -> None:
    with translation.override("en"), pytest.raises(RuleViolation) as error:
        do_add_charge(clinician, encounter_id=encounter.pk, code_id=codes["office"].pk, quantity=1)
    assert error.value.violations == [
        "AA.00.0030 does not apply to this kind of act (video consultation).",
        "AA.00.0010 and AA.00.0030 cannot be billed together for the same act.",
    ]
    assert ChargeItem.objects.filter(encounter=encounter).count() == 2


def test_adding_a_code_beyond_its_maximum_is_refused(
    encounter: Encounter, clinician: User, codes: dict[str, TariffCode]
) -> None:
    with translation.override("en"), pytest.raises(RuleViolation) as error:
        do_add_charge(
            clinician, encounter_id=encounter.pk, code_id=codes["video_base"].pk, quantity=1
        )
    assert error.value.violations == ["AA.00.0010: 2 units is more than the maximum of 1 per act."]


def test_adding_a_code_not_valid_on_the_date_is_refused(
    encounter: Encounter, clinician: User, codes: dict[str, TariffCode]
) -> None:
    TariffCode.objects.filter(pk=codes["report"].pk).update(valid_until=dt.date(2021, 1, 1))
    with pytest.raises(RuleViolation):
        do_add_charge(clinician, encounter_id=encounter.pk, code_id=codes["report"].pk, quantity=1)


def test_codes_are_added_to_finished_consultations_only(
    billing_profile: BillingProfile,
    codes: dict[str, TariffCode],
    record: Patient,
    clinician: User,
    make_encounter: Callable[..., Encounter],
) -> None:
    ongoing = make_encounter(record)
    Encounter.objects.filter(pk=ongoing.pk).update(status=Encounter.Status.IN_PROGRESS)
    with pytest.raises(BillingError):
        do_add_charge(clinician, encounter_id=ongoing.pk, code_id=codes["report"].pk, quantity=1)
    with pytest.raises(BillingError):
        do_add_charge(clinician, encounter_id=ongoing.pk, code_id="999999", quantity=1)
    assert not ChargeItem.objects.exists()


def test_a_code_is_added_to_a_monitoring_period(
    billing_profile: BillingProfile,
    codes: dict[str, TariffCode],
    flat_rates: object,
    record: Patient,
    clinician: User,
) -> None:
    retired = timezone.now() - dt.timedelta(hours=1)
    device = Device.objects.create(
        kind="scale",
        patient=record,
        secret="x",
        registered_by=clinician,
        registered_at=retired - dt.timedelta(days=3),
        status=Device.Status.RETIRED,
        retired_at=retired,
    )
    propose_for_device(device)
    setup = TariffCode.objects.create(
        tariff=codes["monitoring_day"].tariff,
        code="TM.02",
        label="Installation",
        price=D("50.00"),
        automatic=False,
        for_monitoring=True,
        valid_from=VALID_FROM,
    )

    charge = do_add_charge(clinician, device_id=device.pk, code_id=setup.pk, quantity=1)

    assert (charge.device, charge.context, charge.amount) == (
        device,
        Context.MONITORING,
        D("50.00"),
    )
    with pytest.raises(RuleViolation):
        do_add_charge(clinician, device_id=device.pk, code_id=codes["report"].pk, quantity=1)
    assert get_device_for_review(clinician, device.pk)[0] == device


# ---------------------------------------------------------------------------------------------
# Cancel


def test_cancelling_a_charge(encounter: Encounter, clinician: User) -> None:
    more = _charges(encounter)["AA.00.0020"]

    do_cancel_charge(clinician, more.pk)
    do_cancel_charge(clinician, more.pk)

    more.refresh_from_db()
    assert more.status == ChargeItem.Status.CANCELLED
    events = AuditEvent.objects.filter(action=Action.UPDATE, object_id=str(more.pk))
    assert [(e.detail["change"], e.detail["before"]) for e in events] == [("cancel", "proposed")]
    assert [c.code.code for c in act_charges(more)] == ["AA.00.0010"]
    with pytest.raises(BillingError):
        do_change_quantity(clinician, more.pk, 1)


def test_a_confirmed_charge_can_still_be_cancelled(encounter: Encounter, clinician: User) -> None:
    base = _charges(encounter)["AA.00.0010"]
    do_confirm_charges(clinician, [base.pk])
    assert do_cancel_charge(clinician, base.pk).status == ChargeItem.Status.CANCELLED


# ---------------------------------------------------------------------------------------------
# Who may review


def test_charges_to_review_are_the_care_teams(
    encounter: Encounter, clinician: User, outsider: User, billing_user: User
) -> None:
    proposed = set(_charges(encounter).values())
    assert set(charges_to_review(clinician)) == proposed
    assert set(charges_to_review(billing_user)) == proposed
    assert list(charges_to_review(outsider)) == []
    do_confirm_charges(clinician, [c.pk for c in proposed])
    assert list(charges_to_review(clinician)) == []


@pytest.fixture
def strangers(outsider: User, patient: User, make_user: Callable[..., User]) -> list[User]:
    """An outsider clinician, the patient themself, billing staff of another organisation."""
    other = Organization.objects.create(name="Autre hôpital", gln="7601000000297")
    return [outsider, patient, make_user(Role.BILLING, organization=other)]


@pytest.mark.parametrize(
    "act",
    ["confirm", "change", "cancel"],
)
def test_strangers_get_a_404_on_charges_and_it_is_audited(
    encounter: Encounter, strangers: list[User], act: str
) -> None:
    charge = _charges(encounter)["AA.00.0020"]
    actions: dict[str, Callable[[User], object]] = {
        "confirm": lambda user: do_confirm_charges(user, [charge.pk]),
        "change": lambda user: do_change_quantity(user, charge.pk, 1),
        "cancel": lambda user: do_cancel_charge(user, charge.pk),
    }
    for user in strangers:
        with pytest.raises(Http404):
            actions[act](user)

    denials = _denials("billing.chargeitem")
    assert [e.actor_id for e in denials] == [u.pk for u in strangers]
    assert {(e.object_id, e.patient_id) for e in denials} == {
        (str(charge.pk), str(encounter.patient_id))
    }
    charge.refresh_from_db()
    assert (charge.status, charge.quantity) == (ChargeItem.Status.PROPOSED, 3)


def test_strangers_cannot_add_a_code_and_it_is_audited(
    encounter: Encounter, strangers: list[User], codes: dict[str, TariffCode]
) -> None:
    for user in strangers:
        with pytest.raises(Http404):
            do_add_charge(user, encounter_id=encounter.pk, code_id=codes["report"].pk, quantity=1)
        with pytest.raises(Http404):
            get_encounter_for_review(user, encounter.pk)

    denials = _denials("records.encounter")
    assert len(denials) == 2 * len(strangers)
    assert {(e.object_id, e.patient_id) for e in denials} == {
        (str(encounter.pk), str(encounter.patient_id))
    }
    assert ChargeItem.objects.filter(encounter=encounter).count() == 2


def test_an_unknown_charge_is_a_404_too(clinician: User, db: None) -> None:
    with pytest.raises(Http404):
        do_cancel_charge(clinician, 987654)
    with pytest.raises(Http404):
        get_encounter_for_review(clinician, "not-a-number")
    assert len(_denials("billing.chargeitem")) == 1
    assert len(_denials("records.encounter")) == 1


def test_reading_an_encounters_charges_is_audited(encounter: Encounter, clinician: User) -> None:
    found, access = get_encounter_for_review(clinician, encounter.pk)
    assert found == encounter and access.via == "care-team"
    event = AuditEvent.objects.get(action=Action.READ, object_type="records.encounter")
    assert event.actor_id == clinician.pk and event.detail["what"] == "charges"
