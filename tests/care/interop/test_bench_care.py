"""`manage.py bench_care` at a tiny size: its report, its population, its safety."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from apps.accounts.models import Organization, User
from apps.care import bench
from apps.care.management.commands.bench_care import clean_up
from apps.care.models import CarePlan, DoseReminder, Task
from apps.care.models.tasks import OPEN_TASK_STATUSES
from apps.notifications.kinds import KINDS
from apps.notifications.models import Delivery, Preference
from apps.records.access import patients_for_user
from apps.records.models import Observation, Patient

PAGES = {"my_tasks", "plan", "fhir_task_search"}
FIGURES = {"url", "requests", "p50_ms", "p95_ms", "max_ms", "queries", "queries_small", "constant"}
SMALL = ["--patients", "8", "--clinicians", "10", "--nurse-tasks", "12", "--days", "3"]


def _run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("bench_care", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_the_report_gives_times_queries_and_throughputs_then_cleans_up() -> None:
    result = _run(*SMALL, "--requests", "2")

    seeded = result["seeded"]
    assert (seeded["patients"], seeded["clinicians"], seeded["plans"]) == (8, 10, 8)
    assert seeded["nurse_open_tasks"] == 12
    assert seeded["observations"] > 8 * 3 * 4
    assert seeded["build_seconds"]["total"] > 0
    assert set(result["pages"]) == PAGES
    for name, page in result["pages"].items():
        assert FIGURES <= set(page), name
        assert page["requests"] == 2
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["max_ms"]
        assert page["queries"] > 0
        assert page["queries"] == page["queries_small"], name
    assert result["constant"] is True
    assert (
        result["pages"]["plan"]["plan_rows"]["big"] >= result["pages"]["plan"]["plan_rows"]["small"]
    )
    support = result["evaluate_all"]
    assert support["patients"] == 8 and support["patients_per_second"] > 0
    reminders = result["run_reminders"]
    assert reminders["first"]["doses_planned"] > 0
    assert reminders["later"]["doses_sent"] > 0
    assert reminders["later"]["doses_per_second"] > 0
    assert 0 < reminders["later_at_hours"] <= 36
    assert result["peak_rss_mb"] > 0
    assert result["audit_rows_added"] > 0
    # Everything seeded is gone.
    assert not Organization.objects.filter(name=bench.ORGANIZATION_NAME).exists()
    assert not Patient.objects.exists()
    assert not User.objects.filter(email__startswith=bench.EMAIL_PREFIX).exists()
    assert not (Task.objects.exists() or CarePlan.objects.exists() or DoseReminder.objects.exists())
    assert not Observation.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_database_with_other_patients(make_patient: Any) -> None:
    make_patient()

    with pytest.raises(CommandError, match="--yes"):
        _run(*SMALL)

    assert not Organization.objects.filter(name=bench.ORGANIZATION_NAME).exists()
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_too_few_clinicians_is_refused() -> None:
    with pytest.raises(CommandError, match="at least 5"):
        _run("--clinicians", "4")


@pytest.mark.django_db
def test_the_population_holds_the_invariants_of_the_services() -> None:
    options = bench.Options(patients=8, clinicians=10, nurse_tasks=10, days=2, seed=4)

    seeded = bench.seed(options, lambda _message: None)

    # Each patient's practice is their care team, with the grants the care-team service gives.
    nurse = seeded.big_nurse
    hers = {
        p.pk
        for p, practice in zip(seeded.patients, seeded.practice_of, strict=True)
        if practice == 0
    }
    assert set(patients_for_user(nurse).values_list("pk", flat=True)) == hers
    # Plans come from the pathway service: each with goals and activities, one per patient.
    plans = CarePlan.objects.filter(patient__organization=seeded.organization)
    assert plans.count() == 8 and all(plan.pathway_id for plan in plans)
    assert all(plan.goals.exists() and plan.activities.exists() for plan in plans)
    # The measured nurse's open tasks are her patients', assigned to her.
    open_tasks = Task.objects.filter(assignee=nurse, status__in=OPEN_TASK_STATUSES)
    assert open_tasks.count() == 10
    assert set(open_tasks.values_list("patient_id", flat=True)) <= hers
    assert not Task.objects.filter(status="completed", completed_at__isnull=True).exists()
    # Nobody is e-mailed: every bench user chose the in-app inbox only.
    users = User.objects.filter(email__startswith=bench.EMAIL_PREFIX)
    quiet = Preference.objects.filter(user__in=users, email=False, sms=False)
    assert quiet.count() == users.count() * len(KINDS) == 18 * len(KINDS)
    assert not Delivery.objects.filter(
        notification__user__email__startswith=bench.EMAIL_PREFIX
    ).exists()
    assert mail.outbox == []

    clean_up(lambda _message: None)
    assert not Patient.objects.exists()
    assert not User.objects.filter(email__startswith=bench.EMAIL_PREFIX).exists()
