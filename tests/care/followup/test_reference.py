"""The reference questionnaires and the checks on a questionnaire's definition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apps.care.models import Questionnaire
from apps.care.services.followup_items import ItemsError, check_items
from apps.care.services.questionnaires import load_reference_questionnaires
from apps.records.reference import ReferenceDataError

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "care" / "questionnaires.json"


def test_reference_questionnaires_load_idempotently(db: None) -> None:
    first = load_reference_questionnaires()
    again = load_reference_questionnaires()

    assert first["created"] == first["questionnaires"] >= 3
    assert again == {**first, "created": 0, "unchanged": first["questionnaires"]}
    post_op = Questionnaire.objects.get(code="post-op-follow-up")
    assert {i["link_id"] for i in post_op.items} >= {"pain", "fever", "wound", "nausea", "mobility"}
    assert all(i.get("text_en") and i.get("text_de") for i in post_op.items)
    assert Questionnaire.objects.filter(code="heart-failure-symptoms").exists()
    survey = Questionnaire.objects.get(code="satisfaction-consultation")
    assert survey.purpose == Questionnaire.Purpose.SATISFACTION


def test_a_changed_questionnaire_gets_a_new_version(db: None, tmp_path: Path) -> None:
    load_reference_questionnaires()
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    data[0]["items"][0]["text"] = "Votre douleur (0 à 10) ?"
    (tmp_path / "questionnaires.json").write_text(json.dumps(data), encoding="utf-8")

    counts = load_reference_questionnaires(tmp_path)

    assert counts["updated"] == 1
    changed = Questionnaire.objects.get(code=data[0]["code"])
    assert changed.version == 2
    assert changed.items[0]["text"] == "Votre douleur (0 à 10) ?"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.append({**d[0], "title": "Copie"}), "is used twice"),
        (lambda d: d[1].update(purpose="marketing"), "purpose must be one of"),
        (lambda d: d[0]["items"][0].update(type="slider"), "type must be one of"),
        (lambda d: d[0]["items"][0].update(min=12), "min is larger than max"),
        (lambda d: d[0]["items"][1].update(alert={"op": ">", "value": True}), "alert op"),
    ],
)
def test_a_bad_file_writes_nothing(db: None, tmp_path: Path, mutate: Any, expected: str) -> None:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    mutate(data)
    (tmp_path / "questionnaires.json").write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(ReferenceDataError) as caught:
        load_reference_questionnaires(tmp_path)

    assert expected in str(caught.value)
    assert not Questionnaire.objects.exists()


def test_unreadable_files_are_reported(db: None, tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="file not found"):
        load_reference_questionnaires(tmp_path)
    (tmp_path / "questionnaires.json").write_text("[{", encoding="utf-8")
    with pytest.raises(ReferenceDataError, match="invalid JSON"):
        load_reference_questionnaires(tmp_path)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], "non-empty list"),
        ("pain", "non-empty list"),
        ([{"link_id": "Pain!", "text": "Douleur", "type": "integer"}], "link_id must be"),
        (
            [
                {"link_id": "a", "text": "A", "type": "boolean"},
                {"link_id": "a", "text": "B", "type": "boolean"},
            ],
            "link_id is used twice",
        ),
        ([{"link_id": "a", "text": "", "type": "boolean"}], "text must be a non-empty text"),
        (
            [
                {
                    "link_id": "a",
                    "text": "A",
                    "type": "choice",
                    "options": [{"code": "x", "display": "X"}],
                }
            ],
            "at least two options",
        ),
        ([{"link_id": "a", "text": "A", "type": "integer", "min": 1.5}], "min must be an integer"),
        (
            [
                {
                    "link_id": "a",
                    "text": "A",
                    "type": "boolean",
                    "alert": {"op": "=", "value": "yes"},
                }
            ],
            "true or false",
        ),
        (
            [{"link_id": "a", "text": "A", "type": "text", "alert": {"op": "=", "value": "x"}}],
            "cannot alert",
        ),
        (
            [
                {
                    "link_id": "a",
                    "text": "A",
                    "type": "choice",
                    "options": [{"code": "x", "display": "X"}, {"code": "y", "display": "Y"}],
                    "alert": {"op": "=", "value": "z"},
                }
            ],
            "option codes",
        ),
        ([{"link_id": "a", "text": "A", "type": "string", "max_length": 0}], "max_length must be"),
        (
            [{"link_id": "a", "text": "A", "type": "boolean", "colour": "red"}],
            "unknown key(s) colour",
        ),
    ],
)
def test_check_items_says_what_is_wrong(items: Any, expected: str) -> None:
    with pytest.raises(ItemsError) as caught:
        check_items(items)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_check_items_accepts_the_reference_definitions() -> None:
    for questionnaire in json.loads(FIXTURE.read_text(encoding="utf-8")):
        assert check_items(questionnaire["items"]) == questionnaire["items"]
