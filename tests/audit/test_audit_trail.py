"""The audit trail is append-only and tamper-evident."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.models import Action, AuditEvent
from apps.audit.services import do_checkpoint, record, verify_chain
from tests.conftest import in_ci

pytestmark = pytest.mark.django_db


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        if in_ci():
            pytest.fail("CI must run the audit tests on PostgreSQL")
        pytest.skip("needs PostgreSQL (make test uses it)")


def write_events(n: int) -> list[AuditEvent]:
    return [record(Action.READ, object_type="test.thing", object_id=str(i)) for i in range(n)]


def raw(sql: str, params: list[object] | None = None) -> None:
    """Tamper as a database owner would: with the append-only triggers switched off."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def test_events_chain_to_each_other(patient: object) -> None:
    first, second = write_events(2)

    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    assert verify_chain().intact


def test_record_takes_who_and_where_from_the_request(rf: object, patient: object) -> None:
    request = rf.get("/", HTTP_USER_AGENT="UA/1", REMOTE_ADDR="192.0.2.5")  # type: ignore[attr-defined]
    request.user = patient

    event = record(Action.READ, request=request, patient_id="p-1")

    assert (event.actor_id, event.actor_role, event.ip) == (patient.pk, "patient", "192.0.2.5")  # type: ignore[attr-defined]
    assert (event.user_agent, event.patient_id) == ("UA/1", "p-1")


@pytest.mark.usefixtures("postgres")
def test_rows_cannot_be_updated_or_deleted() -> None:
    (event,) = write_events(1)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action=Action.DELETE)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == Action.READ


@pytest.mark.usefixtures("postgres")
def test_verify_audit_finds_an_altered_row() -> None:
    events = write_events(3)
    raw("UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["intruder", events[1].pk])

    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", stdout=StringIO(), stderr=StringIO())
    assert f"row #{events[1].seq} was altered" in verify_chain().problems[0]


@pytest.mark.usefixtures("postgres")
def test_verify_audit_finds_a_removed_row() -> None:
    events = write_events(3)
    raw("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])

    problems = verify_chain().problems

    assert any("missing" in problem for problem in problems)
    assert any(f"row #{events[2].seq} does not link" in problem for problem in problems)


@pytest.mark.usefixtures("postgres")
def test_a_checkpoint_reveals_rows_removed_from_the_end() -> None:
    events = write_events(3)
    do_checkpoint()
    raw("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])

    problems = verify_chain().problems

    assert any("checkpoint" in problem for problem in problems)


def test_verify_audit_reports_an_intact_trail() -> None:
    write_events(3)
    out = StringIO()

    call_command("verify_audit", stdout=out)

    assert "intact: 3 events" in out.getvalue()


def test_the_admin_shows_the_trail_read_only(admin_user: object) -> None:
    from tests.conftest import verified_client

    (event,) = write_events(1)
    client = verified_client(admin_user)  # type: ignore[arg-type]

    listing = client.get("/admin/audit/auditevent/")
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    change = client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "delete"})
    delete = client.get(f"/admin/audit/auditevent/{event.pk}/delete/")

    assert listing.status_code == 200
    assert detail.status_code == 200
    assert 'name="action"' not in detail.content.decode()  # no editable field
    assert change.status_code == 403
    assert delete.status_code == 403
    assert client.get("/admin/audit/auditevent/add/").status_code == 403


def test_a_batch_of_events_chains_after_single_ones_and_verifies(db: None) -> None:
    from django.utils import timezone

    from apps.audit.models import AuditEvent
    from apps.audit.services import record_many

    record("read", object_type="records.patient", object_id="1")
    batch = [
        AuditEvent(
            occurred_at=timezone.now(),
            action="create",
            object_type="devices.reading",
            object_id=f"dev-{n}",
            patient_id=str(n),
            detail={"observations": n},
        )
        for n in range(3)
    ]

    record_many(batch)
    record("read", object_type="records.patient", object_id="2")

    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert verify_chain().intact


def test_plain_rows_chain_like_single_events_and_keep_their_detail(db: None) -> None:
    from django.utils import timezone

    from apps.audit.models import AuditEvent
    from apps.audit.services import record_rows

    first = record("read", object_type="records.patient", object_id="1")
    rows = [
        {
            "occurred_at": timezone.now(),
            "actor_id": None,
            "actor_label": "",
            "actor_role": "",
            "action": "create",
            "outcome": "success",
            "object_type": "devices.reading",
            "object_id": f"dev-{n}",
            "patient_id": str(n),
            "ip": None,
            "user_agent": "",
            "detail": {"observations": n, "note": 'é "quoted"'},
        }
        for n in range(3)
    ]

    chained = record_rows(rows)
    last = record("read", object_type="records.patient", object_id="2")

    assert [seq for seq, _prev, _hash in chained] == [first.seq + 1, first.seq + 2, first.seq + 3]
    assert chained[0][1] == first.hash
    assert last.prev_hash == chained[-1][2]
    stored = AuditEvent.objects.get(seq=first.seq + 2)
    assert stored.detail == {"observations": 1, "note": 'é "quoted"'}
    assert stored.hash == chained[1][2] == stored.compute_hash()
    assert verify_chain().intact
