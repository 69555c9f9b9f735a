"""Decision-support rules as data: validation, versioned saving, and the reference rules.

Editing a rule never changes a row: `do_save_rule_version` writes version n+1 and deactivates
version n in one transaction, so every proposal keeps the exact rule that made it. The kinds and
their parameters are described in `parameters.py`.

The reference rules live in fixtures/care/rules.json (a JSON list of rule objects: `code`,
`kind`, `title`, `title_en`, `title_de`, `rationale`, `rationale_en`, `rationale_de`,
`parameters`, `severity`, `action`, `task_kind`, `reference`, optionally `active`).
`load_reference_rules` is idempotent: an entry equal to the version the file last wrote changes
nothing (so an administrator's later edit stays); a changed entry becomes a new version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.reference import ReferenceDataError

from ...models import Rule
from ...models.common import TaskKind
from .parameters import (
    PLACEHOLDERS,
    PRESCRIPTION_KINDS,
    ParameterError,
    RuleError,
    check_parameters,
)

__all__ = [
    "ParameterError",
    "RuleError",
    "active_rules",
    "check_parameters",
    "check_rule",
    "do_save_rule_version",
    "load_reference_rules",
]

# The fields a version carries (besides code, version and who saved it).
RULE_FIELDS = (
    "kind",
    "title",
    "title_en",
    "title_de",
    "rationale",
    "rationale_en",
    "rationale_de",
    "parameters",
    "severity",
    "action",
    "task_kind",
    "reference",
    "active",
)
PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")
CODE_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FILE_NAME = "rules.json"


def active_rules() -> QuerySet[Rule]:
    return Rule.objects.filter(active=True).order_by("code")


def _text(data: Mapping[str, Any], name: str, limit: int, problems: list[str]) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.append(f"{name}: must be text")
        return ""
    value = value.strip()
    if limit and len(value) > limit:
        problems.append(f"{name}: at most {limit} characters")
    return value


def check_rule(data: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned fields of one rule version (code included), or RuleError listing problems."""
    problems: list[str] = []
    code = data.get("code")
    if not isinstance(code, str) or not CODE_RE.match(code) or len(code) > 60:
        problems.append(f"code: {code!r} must be lowercase words joined by hyphens (60 at most)")
    kind = data.get("kind")
    parameters: dict[str, Any] = {}
    if kind not in Rule.Kind.values:
        problems.append(f"kind: must be one of {', '.join(Rule.Kind.values)}, not {kind!r}")
    else:
        try:
            parameters = check_parameters(kind, data.get("parameters"))
        except ParameterError as error:
            problems.extend(f"parameters.{problem}" for problem in error.problems)
    cleaned: dict[str, Any] = {"code": code, "kind": kind, "parameters": parameters}
    for name in ("title", "title_en", "title_de"):
        cleaned[name] = _text(data, name, 200, problems)
    for name in ("rationale", "rationale_en", "rationale_de"):
        cleaned[name] = _text(data, name, 0, problems)
    cleaned["reference"] = _text(data, "reference", 300, problems)
    if not cleaned["title"]:
        problems.append("title: the French title is required")
    if not cleaned["rationale"]:
        problems.append("rationale: the French reason is required")
    if kind in PLACEHOLDERS:
        allowed = PLACEHOLDERS[kind]
        for name in ("rationale", "rationale_en", "rationale_de"):
            unknown = sorted(set(PLACEHOLDER_RE.findall(cleaned[name])) - set(allowed))
            if unknown:
                problems.append(
                    f"{name}: unknown placeholder(s) {', '.join(unknown)} "
                    f"(a {kind} rule offers {', '.join(allowed)})"
                )
    for name, choices, default in (
        ("severity", Rule.Severity.values, Rule.Severity.WARNING),
        ("action", Rule.Action.values, Rule.Action.TASK),
        ("task_kind", TaskKind.values, TaskKind.OTHER),
    ):
        value = data.get(name) or default
        if value not in choices:
            problems.append(f"{name}: must be one of {', '.join(choices)}, not {value!r}")
        cleaned[name] = value
    if cleaned["action"] == Rule.Action.PRESCRIPTION and kind not in PRESCRIPTION_KINDS:
        problems.append(
            "action: only sustained and dose-range rules draft a prescription; "
            "the others create a task"
        )
    active = data.get("active", True)
    if not isinstance(active, bool):
        problems.append("active: must be true or false")
    cleaned["active"] = bool(active)
    if problems:
        raise RuleError(problems)
    return cleaned


def do_save_rule_version(rule_data: Mapping[str, Any], user: User | None) -> Rule:
    """Save `rule_data` as the next version of its code (version 1 for a new code).

    The previous active version is deactivated in the same transaction; proposals keep pointing
    to the version that made them. `user` is None for the reference loader.
    """
    data = check_rule(rule_data)
    code = data.pop("code")
    try:
        with transaction.atomic():
            versions = Rule.objects.select_for_update().filter(code=code)
            latest = max((v.version for v in versions), default=0)
            versions.filter(active=True).update(active=False)
            rule = Rule.objects.create(
                code=code,
                version=latest + 1,
                created_by=user,
                created_at=timezone.now(),
                **data,
            )
            audit(
                Action.CREATE,
                actor=user,
                obj=rule,
                detail={
                    "what": "decision-support rule",
                    "code": code,
                    "version": rule.version,
                    "previous": latest or None,
                    "active": rule.active,
                },
            )
    except IntegrityError:
        # Two saves of the same code at once: the unique (code, version) stopped the second.
        raise RuleError(
            [f"code: {code} was saved by someone else at the same time; try again"]
        ) from None
    return rule


def rule_data(rule: Rule) -> dict[str, Any]:
    """The fields of a version, as `do_save_rule_version` takes them."""
    return {"code": rule.code, **{name: getattr(rule, name) for name in RULE_FIELDS}}


def _content(data: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name != "active"}


def _read(path: Path) -> list[dict[str, Any]]:
    """The cleaned entries of the file, or ReferenceDataError with every problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceDataError([f"{path}: file not found"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReferenceDataError([f"{path.name}: not valid JSON ({error})"]) from None
    if not isinstance(raw, list):
        raise ReferenceDataError([f"{path.name}: must be a JSON list of rules"])
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    codes: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"{path.name}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object")
            continue
        where += f" ({entry.get('code')})"
        try:
            cleaned = check_rule(entry)
        except RuleError as error:
            problems.extend(f"{where}: {problem}" for problem in error.problems)
            continue
        for language in ("en", "de"):
            for name in ("title", "rationale"):
                if not cleaned[f"{name}_{language}"]:
                    problems.append(f"{where}: {name}_{language}: reference rules are trilingual")
        if not cleaned["reference"]:
            problems.append(f"{where}: reference: cite the source of a reference rule")
        if cleaned["code"] in codes:
            problems.append(f"{where}: code: appears twice in the file")
        codes.add(cleaned["code"])
        entries.append(cleaned)
    if problems:
        raise ReferenceDataError(problems)
    return entries


def load_reference_rules(directory: str | Path | None = None) -> dict[str, int]:
    """Upsert the rules of `directory`/rules.json (default fixtures/care); counts by outcome.

    Everything is validated before anything is written, and written in one transaction.
    """
    base = Path(directory) if directory is not None else Path(settings.BASE_DIR) / "fixtures"
    if directory is None:
        base = base / "care"
    entries = _read(base / FILE_NAME)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic():
        for entry in entries:
            versions = Rule.objects.filter(code=entry["code"])
            # The last version this file wrote: equal means the entry did not change since, and
            # an administrator's later version (created_by set) is left as it is.
            from_file = versions.filter(created_by__isnull=True).order_by("-version").first()
            # `active` is left out: a later version deactivates the one the file wrote.
            if from_file is not None and _content(rule_data(from_file)) == _content(entry):
                counts["unchanged"] += 1
                continue
            existed = versions.exists()
            do_save_rule_version(entry, None)
            counts["updated" if existed else "created"] += 1
    return counts
