"""The demo makes every kind of rule fire for the demo patients, once: a second run adds
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.accounts import demo as accounts_demo
from apps.care import demo_support
from apps.care.models import Proposal, Rule
from apps.records import demo as records_demo
from apps.records.models import Observation


@pytest.fixture(autouse=True)
def _demo_settings(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path / "media"


def test_the_demo_fires_every_kind_once(db: None) -> None:
    context: dict[str, Any] = {"logins": []}
    accounts_demo.seed(context)
    records_demo.seed(context)

    demo_support.seed(context)

    proposals = Proposal.objects.select_related("rule", "patient")
    kinds = {p.rule.kind for p in proposals}
    assert kinds == set(Rule.Kind.values)
    by_patient = {(p.patient.given_names, p.rule_code) for p in proposals}
    assert ("Marie", "bp-above-target-on-treatment") in by_patient
    assert ("Paul", "glucose-drift-hba1c") in by_patient
    assert ("Hans", "paracetamol-daily-max") in by_patient
    assert all(p.status == Proposal.Status.OPEN for p in proposals)

    counts = (Proposal.objects.count(), Observation.objects.count())
    demo_support.seed(context)
    assert (Proposal.objects.count(), Observation.objects.count()) == counts
