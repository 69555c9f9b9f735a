"""The care reference data: pathways.json is checked before anything is written, loaded
idempotently, and a changed pathway gets a new version; the command loads questionnaires,
pathways and decision-support rules together and prints the counts."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.care.models import (
    Pathway,
    PathwayActivity,
    PathwayGoal,
    PathwayQuestionnaire,
    PathwayThreshold,
    Questionnaire,
    Rule,
)
from apps.care.reference import check_pathways, load_care_reference, load_pathways
from apps.records.reference import ReferenceDataError

FIXTURES = Path(settings.BASE_DIR) / "fixtures" / "care"


def _pathways() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "pathways.json").read_text(encoding="utf-8"))


def _write(folder: Path, data: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pathways.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return folder


def _snapshot() -> tuple[Any, ...]:
    return (
        list(Pathway.objects.order_by("code").values_list("code", "version", "name")),
        PathwayGoal.objects.count(),
        PathwayActivity.objects.count(),
        PathwayThreshold.objects.count(),
        PathwayQuestionnaire.objects.count(),
    )


def test_the_reference_pathways_load_and_load_again_unchanged(
    questionnaires: dict[str, Questionnaire],
) -> None:
    assert load_pathways() == {"pathways": 4, "created": 4, "updated": 0, "unchanged": 0}
    codes = set(Pathway.objects.values_list("code", flat=True))
    assert codes == {"heart-failure", "type-2-diabetes", "post-operative", "copd"}
    heart = Pathway.objects.get(code="heart-failure")
    assert (heart.follow_up_days, heart.version) == (30, 1)
    assert heart.name_en == "Heart failure" and heart.name_de == "Herzinsuffizienz"
    assert heart.satisfaction_survey == questionnaires["satisfaction-consultation"]
    weight = heart.thresholds.get(code="29463-7", kind="rise")
    assert (weight.limit, weight.window, weight.hysteresis) == (
        Decimal(2),
        dt.timedelta(hours=72),
        Decimal("0.5"),
    )
    diabetes = Pathway.objects.get(code="type-2-diabetes")
    assert diabetes.goals.filter(measure="4548-4", target_high=Decimal(7)).exists()
    post_op = Pathway.objects.get(code="post-operative")
    line = post_op.questionnaires.get()
    assert (line.questionnaire.code, line.days) == ("post-op-follow-up", [1, 3, 7, 14])
    assert (
        Pathway.objects.get(code="copd")
        .thresholds.filter(code="59408-5", kind="below", limit=Decimal(90))
        .exists()
    )

    before = _snapshot()
    assert load_pathways() == {"pathways": 4, "created": 0, "updated": 0, "unchanged": 4}
    assert _snapshot() == before


def test_a_changed_pathway_is_updated_with_a_new_version(
    questionnaires: dict[str, Questionnaire], tmp_path: Path
) -> None:
    load_pathways()
    data = _pathways()
    data[0]["follow_up_days"] = 21
    data[0]["goals"] = data[0]["goals"][:2]
    folder = _write(tmp_path / "changed", data)

    assert load_pathways(folder) == {"pathways": 4, "created": 0, "updated": 1, "unchanged": 3}
    heart = Pathway.objects.get(code="heart-failure")
    assert (heart.follow_up_days, heart.version) == (21, 2)
    assert heart.goals.count() == 2
    assert Pathway.objects.get(code="copd").version == 1
    # loading the same file again changes nothing more
    assert load_pathways(folder)["unchanged"] == 4
    assert Pathway.objects.get(code="heart-failure").version == 2


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d[0].update(follow_up_days=0), "follow_up_days must be a whole number"),
        (lambda d: d[0]["goals"][1].update(measure="8480-7"), "not a valid LOINC code"),
        (lambda d: d[0]["goals"][1].update(target_low=200), "target_high is below target_low"),
        (lambda d: d[0]["activities"][0].update(kind="chore"), "kind must be one of"),
        (lambda d: d[0]["activities"][0].update(role="billing"), "role must be one of"),
        (lambda d: d[0]["thresholds"][0].update(limit=-2), "change must be between"),
        (lambda d: d[0]["thresholds"][0].update(code="1234-5"), "Choose a measurement"),
        (lambda d: d[0]["thresholds"][1].update(window_hours=24), "rise and fall rules only"),
        (lambda d: d[0]["thresholds"][0].update(window_hours=24 * 31), "window_hours must be"),
        (lambda d: d[2]["questionnaires"][0].update(days=[]), "days must be a list"),
        (lambda d: d[1].update(code="copd"), "entry 3: duplicates entry 1"),
        (lambda d: d[1].update(colour="blue"), "colour is not a known key"),
        (lambda d: d[1].pop("name"), "name is required"),
    ],
)
def test_an_invalid_file_writes_nothing(
    questionnaires: dict[str, Questionnaire], tmp_path: Path, change: Any, problem: str
) -> None:
    load_pathways()
    before = _snapshot()
    data = _pathways()
    data[0]["follow_up_days"] = 45  # a valid change the bad one must not let through
    change(data)
    folder = _write(tmp_path / "bad", data)
    with pytest.raises(ReferenceDataError) as raised:
        load_pathways(folder)
    assert any(problem in line for line in raised.value.problems), raised.value.problems
    assert _snapshot() == before


def test_files_that_are_not_pathways_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pathways.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ReferenceDataError, match="not valid JSON"):
        check_pathways(tmp_path)
    _write(tmp_path, {"code": "x"})
    with pytest.raises(ReferenceDataError, match="list of objects"):
        check_pathways(tmp_path)
    with pytest.raises(ReferenceDataError, match="file not found"):
        check_pathways(tmp_path / "missing")


def test_a_pathway_naming_an_unknown_questionnaire_writes_nothing(
    questionnaires: dict[str, Questionnaire], tmp_path: Path
) -> None:
    data = _pathways()
    data[2]["questionnaires"][0]["questionnaire"] = "post-op-inexistant"
    with pytest.raises(ReferenceDataError, match="post-op-inexistant"):
        load_pathways(_write(tmp_path, data))
    assert not Pathway.objects.exists()


def test_the_command_loads_questionnaires_pathways_and_rules(db: None) -> None:
    out = io.StringIO()
    call_command("load_care_reference", stdout=out)
    counts = json.loads(out.getvalue())
    assert counts["pathways"] == {"pathways": 4, "created": 4, "updated": 0, "unchanged": 0}
    assert counts["questionnaires"]["created"] >= 3
    assert counts["rules"]["created"] == Rule.objects.count() > 0
    assert Pathway.objects.get(code="post-operative").questionnaires.exists()
    # idempotent
    again = load_care_reference()
    assert again["pathways"]["unchanged"] == 4
    assert again["questionnaires"]["created"] == 0
    assert again["rules"]["created"] == 0


def test_the_command_reports_a_bad_pathways_file_and_writes_nothing(
    db: None, tmp_path: Path
) -> None:
    for name in ("questionnaires.json", "rules.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    data = _pathways()
    data[0]["thresholds"][0]["kind"] = "sideways"
    _write(tmp_path, data)
    with pytest.raises(CommandError, match="kind must be one of"):
        call_command("load_care_reference", directory=str(tmp_path), stdout=io.StringIO())
    assert not Pathway.objects.exists()
    assert not Questionnaire.objects.exists()
    assert not Rule.objects.exists()


def test_a_pathway_the_questionnaires_file_lacks_writes_nothing(db: None, tmp_path: Path) -> None:
    # the pathways are valid alone, but the questionnaire they name is not in the other file
    for name in ("questionnaires.json", "rules.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    data = _pathways()
    data[2]["questionnaires"][0]["questionnaire"] = "post-op-version-2"
    _write(tmp_path, data)
    with pytest.raises(ReferenceDataError, match="post-op-version-2"):
        load_care_reference(tmp_path)
    assert not Questionnaire.objects.exists()
    assert not Pathway.objects.exists()
