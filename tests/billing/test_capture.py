"""Automatic capture: charges proposed from finished encounters and closed monitoring periods,
once per act, even when two workers run at the same time."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import (
    BillingProfile,
    Capture,
    ChargeItem,
    Context,
    Insurer,
    PointValue,
    Tariff,
    TariffCode,
)
from apps.billing.services import BillingError
from apps.billing.services.capture import (
    capture_pending,
    context_of,
    propose_for_device,
    propose_for_encounter,
)
from apps.billing.tasks import capture_charges
from apps.devices.models import Device
from apps.notifications.models import Notification
from apps.records.models import Encounter, Patient

from .conftest import VALID_FROM

D = Decimal
DAY = dt.timedelta(days=1)


def _lines(charges: list[ChargeItem]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [(c.code.code, c.quantity, c.unit_price, c.amount) for c in charges]


def _device(patient: Patient | None, by: User | None, days: float, **fields: object) -> Device:
    retired = timezone.now() - dt.timedelta(hours=2)
    return Device.objects.create(
        kind="blood_pressure",
        patient=patient,
        secret="not-used",
        registered_by=by,
        registered_at=retired - dt.timedelta(days=days),
        status=Device.Status.RETIRED,
        retired_at=retired,
        **fields,
    )


def _unfinished(encounter: Encounter) -> Encounter:
    Encounter.objects.filter(pk=encounter.pk).update(status=Encounter.Status.IN_PROGRESS)
    encounter.refresh_from_db()
    return encounter


@pytest.fixture
def ready(billing_profile: BillingProfile, codes: dict[str, TariffCode]) -> None:
    """The billing profile and the catalogue are in place."""


# ---------------------------------------------------------------------------------------------
# Contexts


@pytest.mark.parametrize(
    ("kind", "context"),
    [("VR", Context.VIDEO), ("AMB", Context.IN_PERSON), ("HH", Context.IN_PERSON), ("IMP", None)],
)
def test_context_of_an_encounter(kind: str, context: str | None) -> None:
    assert context_of(Encounter(kind=kind)) == context


# ---------------------------------------------------------------------------------------------
# Encounters


def test_a_17_minute_video_call_is_base_plus_three_further_units(
    ready: None, record: Patient, clinician: User, make_encounter: Callable[..., Encounter]
) -> None:
    encounter = make_encounter(record, minutes=17)

    charges = propose_for_encounter(encounter)

    # 18.52 × 0.93 = 17.22; 17.26 × 0.93 = 16.05, × 3 = 48.15. The report is not automatic.
    assert _lines(charges) == [
        ("AA.00.0010", D("1"), D("17.22"), D("17.22")),
        ("AA.00.0020", D("3"), D("16.05"), D("48.15")),
    ]
    for charge in charges:
        charge.refresh_from_db()
        assert charge.status == ChargeItem.Status.PROPOSED
        assert charge.context == Context.VIDEO
        assert charge.encounter == encounter and charge.device is None
        assert charge.patient == record
        assert charge.performer == clinician
        assert charge.performed_at == encounter.started_at
        assert charge.point_value == D("0.9300")
        assert charge.vat_rate == D("0")
        assert "17" in charge.explanation
    assert charges[0].unit_points == D("18.52")
    assert "3" in charges[1].explanation
    assert Capture.objects.filter(encounter=encounter).count() == 1


def test_proposals_are_audited_without_an_actor(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    charges = propose_for_encounter(make_encounter(record, minutes=17))

    events = AuditEvent.objects.filter(action=Action.CREATE, object_type="billing.chargeitem")
    assert sorted(int(e.object_id) for e in events) == sorted(c.pk for c in charges)
    for event in events:
        assert event.actor_id is None
        assert event.patient_id == str(record.pk)
        assert event.detail["what"] == "charge proposed"


def test_a_short_video_call_has_no_further_units(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    charges = propose_for_encounter(make_encounter(record, minutes=4))
    assert _lines(charges) == [("AA.00.0010", D("1"), D("17.22"), D("17.22"))]


def test_a_long_video_call_is_capped_and_says_so(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    charges = propose_for_encounter(make_encounter(record, minutes=95))
    # 90 minutes beyond the first 5 are 18 started units, capped at 6: 6 × 16.05 = 96.30.
    assert _lines(charges)[1] == ("AA.00.0020", D("6"), D("16.05"), D("96.30"))
    assert "18" in charges[1].explanation and "6" in charges[1].explanation


def test_seconds_over_a_unit_start_a_new_unit_but_fractions_of_a_second_do_not(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    ended = timezone.now() - dt.timedelta(hours=1)
    over = make_encounter(record, minutes=15, ended_at=ended)
    over.ended_at = over.started_at + dt.timedelta(minutes=15, seconds=1)
    over.save()
    jitter = make_encounter(record, minutes=15, ended_at=ended)
    jitter.ended_at = jitter.started_at + dt.timedelta(minutes=15, microseconds=400_000)
    jitter.save()

    assert propose_for_encounter(over)[1].quantity == 3
    assert propose_for_encounter(jitter)[1].quantity == 2


@pytest.mark.parametrize("kind", [Encounter.Kind.AMBULATORY, Encounter.Kind.HOME])
def test_an_in_person_encounter_gets_the_office_code(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter], kind: str
) -> None:
    charges = propose_for_encounter(make_encounter(record, minutes=12, kind=kind))
    # 19.35 × 0.93 = 17.9955 → 18.00
    assert _lines(charges) == [("AA.00.0030", D("1"), D("18.00"), D("18.00"))]
    assert charges[0].context == Context.IN_PERSON


def test_prices_use_the_patients_insurers_point_value(
    ready: None,
    record: Patient,
    insurer: Insurer,
    tardoc: Tariff,
    make_encounter: Callable[..., Encounter],
) -> None:
    PointValue.objects.create(
        tariff=tardoc, canton="VD", insurer=insurer, value=D("0.9100"), valid_from=VALID_FROM
    )
    charges = propose_for_encounter(make_encounter(record, minutes=17))
    # 18.52 × 0.91 = 16.85; 17.26 × 0.91 = 15.71, × 3 = 47.13
    assert _lines(charges) == [
        ("AA.00.0010", D("1"), D("16.85"), D("16.85")),
        ("AA.00.0020", D("3"), D("15.71"), D("47.13")),
    ]


def test_prices_use_the_organisations_canton(
    ready: None,
    billing_profile: BillingProfile,
    record2: Patient,
    make_encounter: Callable[..., Encounter],
) -> None:
    billing_profile.canton = "GE"
    billing_profile.save()
    # record2 has no coverage: the canton's value (0.96): 18.52 × 0.96 = 17.78
    charges = propose_for_encounter(make_encounter(record2, minutes=3))
    assert _lines(charges) == [("AA.00.0010", D("1"), D("17.78"), D("17.78"))]


def test_codes_not_valid_on_the_date_are_not_proposed(
    ready: None,
    record: Patient,
    codes: dict[str, TariffCode],
    make_encounter: Callable[..., Encounter],
) -> None:
    codes["video_more"].valid_until = timezone.localdate() - dt.timedelta(days=10)
    codes["video_more"].save()
    charges = propose_for_encounter(make_encounter(record, minutes=17))
    assert [c.code.code for c in charges] == ["AA.00.0010"]


def test_an_incompatible_pair_keeps_the_first_code_and_explains_the_other(
    ready: None,
    record: Patient,
    tardoc: Tariff,
    codes: dict[str, TariffCode],
    make_encounter: Callable[..., Encounter],
) -> None:
    first = TariffCode.objects.create(
        tariff=tardoc,
        code="AA.00.0005",
        label="Consultation vidéo d'urgence",
        tax_points=D("30.00"),
        for_video=True,
        max_quantity=1,
        valid_from=VALID_FROM,
    )
    first.incompatible_with.add(codes["video_base"])

    charges = propose_for_encounter(make_encounter(record, minutes=17))

    assert [c.code.code for c in charges] == ["AA.00.0005", "AA.00.0020"]
    assert "AA.00.0010" in charges[0].explanation
    assert "AA.00.0010" not in charges[1].explanation


def test_inpatient_and_unfinished_encounters_are_not_captured(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    stay = make_encounter(record, kind=Encounter.Kind.INPATIENT)
    ongoing = _unfinished(make_encounter(record))
    open_ended = make_encounter(record)
    Encounter.objects.filter(pk=open_ended.pk).update(ended_at=None)
    open_ended.refresh_from_db()

    assert propose_for_encounter(stay) == []
    assert propose_for_encounter(ongoing) == []
    assert propose_for_encounter(open_ended) == []
    assert not Capture.objects.exists() and not ChargeItem.objects.exists()


def test_an_organisation_without_billing_profile_cannot_be_priced(
    codes: dict[str, TariffCode], record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    encounter = make_encounter(record)
    with pytest.raises(BillingError):
        propose_for_encounter(encounter)
    # Nothing half done: the act will be captured once the profile exists.
    assert not Capture.objects.exists() and not ChargeItem.objects.exists()


def test_capturing_twice_proposes_once(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    encounter = make_encounter(record, minutes=17)
    assert len(propose_for_encounter(encounter)) == 2
    assert propose_for_encounter(encounter) == []
    assert ChargeItem.objects.filter(encounter=encounter).count() == 2
    assert Capture.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_capturing_at_once_propose_once(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    encounter = make_encounter(record, minutes=17)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def capture() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(len(propose_for_encounter(Encounter.objects.get(pk=encounter.pk))))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=capture) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results, key=str) == [0, 2]
    assert Capture.objects.filter(encounter=encounter).count() == 1
    assert ChargeItem.objects.filter(encounter=encounter).count() == 2


def test_the_clinician_is_told_there_are_charges_to_review(
    ready: None,
    record: Patient,
    clinician: User,
    make_encounter: Callable[..., Encounter],
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    encounter = make_encounter(record, minutes=17)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        propose_for_encounter(encounter)

    notice = Notification.objects.get(user=clinician)
    assert notice.kind == "care.task"
    assert notice.link == f"/clinic/charges/encounter/{encounter.pk}/"
    # No amounts in what may leave by email.
    assert "CHF" not in notice.title + notice.body and "17" not in notice.title + notice.body


# ---------------------------------------------------------------------------------------------
# Monitoring periods


def test_a_monitoring_period_of_ten_and_a_half_days_is_eleven_days(
    ready: None, record: Patient, clinician: User
) -> None:
    device = _device(record, clinician, 10.5)

    charges = propose_for_device(device)

    assert _lines(charges) == [("TM.01", D("11"), D("4.80"), D("52.80"))]
    charge = charges[0]
    assert charge.context == Context.MONITORING
    assert charge.device == device and charge.encounter is None
    assert charge.performer == clinician
    assert charge.performed_at == device.registered_at
    assert "10.5" in charge.explanation or "10,5" in charge.explanation
    assert Capture.objects.filter(device=device).count() == 1


def test_a_monitoring_period_of_forty_days_is_capped_at_thirty(
    ready: None, record: Patient, clinician: User
) -> None:
    charges = propose_for_device(_device(record, clinician, 40))
    assert _lines(charges) == [("TM.01", D("30"), D("4.80"), D("144.00"))]


def test_a_device_set_up_by_a_technician_has_no_performer(
    ready: None, record: Patient, admin_user: User
) -> None:
    charges = propose_for_device(_device(record, admin_user, 2))
    assert charges[0].performer is None


def test_devices_without_patient_or_still_active_are_not_captured(
    ready: None, record: Patient, clinician: User
) -> None:
    spare = _device(None, clinician, 3)
    active = Device.objects.create(
        kind="scale", patient=record, secret="x", registered_at=timezone.now() - 5 * DAY
    )
    assert propose_for_device(spare) == []
    assert propose_for_device(active) == []
    assert not Capture.objects.exists()


def test_a_monitoring_period_is_captured_once(
    ready: None, record: Patient, clinician: User
) -> None:
    device = _device(record, clinician, 3)
    assert len(propose_for_device(device)) == 1
    assert propose_for_device(device) == []
    assert ChargeItem.objects.filter(device=device).count() == 1


# ---------------------------------------------------------------------------------------------
# The beat task


def test_capture_pending_captures_finished_acts_once(
    ready: None,
    record: Patient,
    record2: Patient,
    clinician: User,
    make_encounter: Callable[..., Encounter],
) -> None:
    video = make_encounter(record, minutes=17)
    visit = make_encounter(record2, minutes=10, kind=Encounter.Kind.AMBULATORY)
    device = _device(record, clinician, 10.5)

    assert capture_pending() == 3
    assert capture_pending() == 0

    assert ChargeItem.objects.filter(encounter=video).count() == 2
    assert ChargeItem.objects.filter(encounter=visit).count() == 1
    assert ChargeItem.objects.filter(device=device).count() == 1


def test_capture_pending_leaves_unfinished_old_and_inpatient_acts(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    _unfinished(make_encounter(record))
    make_encounter(record, kind=Encounter.Kind.INPATIENT)
    make_encounter(record, ended_at=timezone.now() - 31 * DAY)
    recent = make_encounter(record, ended_at=timezone.now() - 29 * DAY)

    assert capture_pending() == 1
    assert list(Capture.objects.values_list("encounter_id", flat=True)) == [recent.pk]


def test_capture_pending_skips_organisations_without_profile_and_logs_it(
    ready: None,
    record: Patient,
    make_patient: Callable[..., Patient],
    make_encounter: Callable[..., Encounter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clinic = Organization.objects.create(name="Clinique sans facturation", gln="7601000000198")
    elsewhere = make_patient(organization=clinic)
    orphan = make_patient(organization=None)
    skipped = [make_encounter(elsewhere), make_encounter(orphan)]
    captured = make_encounter(record)

    with caplog.at_level(logging.WARNING, logger="apps.billing.services.capture"):
        assert capture_pending() == 1

    assert list(Capture.objects.values_list("encounter_id", flat=True)) == [captured.pk]
    assert not ChargeItem.objects.filter(encounter__in=skipped).exists()
    assert "2 acts skipped" in caplog.text


def test_a_failed_capture_is_logged_and_retried_once_the_catalogue_is_fixed(
    ready: None,
    billing_profile: BillingProfile,
    record: Patient,
    tardoc: Tariff,
    make_encounter: Callable[..., Encounter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    billing_profile.canton = "ZH"  # no TARDOC point value in Zurich yet
    billing_profile.save()
    encounter = make_encounter(record, minutes=17)

    with caplog.at_level(logging.ERROR, logger="apps.billing.services.capture"):
        assert capture_pending() == 0
    assert "ZH" in caplog.text
    assert not Capture.objects.exists() and not ChargeItem.objects.exists()

    PointValue.objects.create(tariff=tardoc, canton="ZH", value=D("0.8900"), valid_from=VALID_FROM)
    assert capture_pending() == 1
    assert ChargeItem.objects.filter(encounter=encounter).count() == 2


def test_capture_pending_is_batch_limited(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    for _ in range(3):
        make_encounter(record)
    assert capture_pending(limit=2) == 2
    assert capture_pending(limit=2) == 1


def test_the_beat_task_captures(
    ready: None, record: Patient, make_encounter: Callable[..., Encounter]
) -> None:
    make_encounter(record)
    assert capture_charges.delay().get() == 1
