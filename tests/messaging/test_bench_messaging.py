"""`manage.py bench_messaging` at a tiny size: its report, its population, its safety."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Max

from apps.accounts.models import Organization, User
from apps.messaging import bench
from apps.messaging.access import thread_access, threads_for_user
from apps.messaging.management.commands.bench_messaging import clean_up
from apps.messaging.models import Attachment, Message, Participant, Thread
from apps.messaging.services.attachments import open_attachment
from apps.records.models import Patient

PAGES = {
    "inbox_unassigned",
    "inbox_mine",
    "inbox_urgent",
    "inbox_open",
    "inbox_resolved",
    "clinic_thread",
    "patient_threads",
    "thread_list",
    "thread",
}
FIGURES = {"url", "requests", "p50_ms", "p95_ms", "max_ms", "queries", "queries_small", "constant"}


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("bench_messaging", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_the_report_gives_each_page_its_times_and_a_constant_query_count(
    settings: Any, tmp_path: Path
) -> None:
    result = _run("--messages", "300", "--patients", "40", "--clinicians", "6", "--requests", "2")

    assert result["seeded"]["messages"] == 300
    assert result["seeded"]["threads"] == 30
    assert result["seeded"]["build_seconds"]["total"] > 0
    assert set(result["pages"]) == PAGES
    for name, page in result["pages"].items():
        assert FIGURES <= set(page), name
        assert page["requests"] == 2
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["max_ms"]
        assert page["queries"] > 0
        assert page["queries"] == page["queries_small"], (name, page.get("queries_only_big"))
        assert page["constant"] is True
    assert result["constant"] is True
    assert result["audit_rows_added"] > 0
    # Everything seeded is gone, the stored files too.
    assert not Organization.objects.filter(name=bench.ORGANIZATION_NAME).exists()
    assert not Thread.objects.exists()
    assert not Patient.objects.exists()
    assert not User.objects.filter(email__startswith=bench.EMAIL_PREFIX).exists()
    assert not [path for path in (tmp_path / "media").rglob("*") if path.is_file()]


@pytest.mark.django_db
def test_it_refuses_a_database_with_other_patients(make_patient: Any) -> None:
    make_patient()

    with pytest.raises(CommandError, match="--yes"):
        _run("--messages", "50", "--patients", "5", "--clinicians", "3")

    assert not Organization.objects.filter(name=bench.ORGANIZATION_NAME).exists()
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_more_threads_than_messages_is_refused() -> None:
    with pytest.raises(CommandError, match="--threads"):
        _run("--messages", "10", "--threads", "11")


@pytest.mark.django_db
def test_the_population_holds_the_invariants_of_the_services() -> None:
    options = bench.Options(messages=600, patients=30, clinicians=8, seed=3)

    seeded = bench.seed(options, lambda _message: None)

    threads = Thread.objects.filter(patient__organization=seeded.organization)
    assert threads.count() == 60
    assert Message.objects.filter(thread__in=threads).count() == 600
    # Counters and last-message times match the messages.
    actual = threads.annotate(n=Count("messages"), last=Max("messages__sent_at"))
    for thread in actual:
        assert thread.message_count == thread.n
        assert thread.last_message_at == thread.last
        assert (thread.response_due_at is not None) == (
            thread.state == Thread.State.OPEN and thread.last_message_by_patient
        )
    # Nobody but the team writes in a staff-only discussion; automatic replies have no author.
    assert not Message.objects.filter(
        thread__staff_only=True, author__role="patient", thread__in=threads
    ).exists()
    assert not Message.objects.filter(automatic=True, author__isnull=False).exists()
    # The bulk grants open exactly the care team's threads, and the patient's own non-staff ones.
    lead = seeded.clinicians[0]
    visible = set(threads_for_user(lead).values_list("pk", flat=True))
    plans = zip(seeded.thread_ids, seeded.plans, strict=True)
    planned = {pk for pk, plan in plans if lead.pk in plan.team}
    assert visible == planned
    assert all(thread_access(lead, thread) for thread in threads.filter(pk__in=visible)[:10])
    owner = seeded.patients[0].user
    assert owner is not None
    mine = threads_for_user(owner)
    assert mine.count() == threads.filter(patient=seeded.patients[0], staff_only=False).count()
    # Each participant row is unique; the attached files are real and open.
    pairs = Counter(Participant.objects.values_list("thread_id", "user_id"))
    assert pairs and max(pairs.values()) == 1
    attachment = Attachment.objects.filter(message__thread__in=threads).first()
    assert attachment is not None
    assert open_attachment(attachment)[:2] in (b"\xff\xd8", b"%P")

    clean_up(lambda _message: None)
    assert not Message.objects.exists()
