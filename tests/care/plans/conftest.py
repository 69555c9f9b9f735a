"""The plans area's cast on top of tests/care/conftest.py: the reference pathways (loaded from
fixtures/care/pathways.json, with the questionnaires they name), signed-in clients reading in
English, and a listener of live events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import translation

from apps.care.models import Pathway, Questionnaire
from apps.care.reference import load_pathways


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Services' messages read in English (the tests match them), pages by their cookie."""
    with translation.override("en"):
        yield


QUESTION = {"link_id": "pain", "text": "Douleur (0 à 10)", "type": "integer", "min": 0, "max": 10}


@pytest.fixture
def questionnaires(db: None) -> dict[str, Questionnaire]:
    """The questionnaires the reference pathways name (the follow-up area owns their content)."""
    made = {}
    for code, purpose in (
        ("post-op-follow-up", Questionnaire.Purpose.FOLLOW_UP),
        ("heart-failure-symptoms", Questionnaire.Purpose.FOLLOW_UP),
        ("satisfaction-consultation", Questionnaire.Purpose.SATISFACTION),
    ):
        made[code], _created = Questionnaire.objects.get_or_create(
            code=code, defaults={"title": code, "purpose": purpose, "items": [QUESTION]}
        )
    return made


@pytest.fixture
def pathways(questionnaires: dict[str, Questionnaire]) -> dict[str, Pathway]:
    load_pathways()
    return {pathway.code: pathway for pathway in Pathway.objects.all()}


@pytest.fixture
def heart_failure(pathways: dict[str, Pathway]) -> Pathway:
    return pathways["heart-failure"]
