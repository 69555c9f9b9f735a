"""Questionnaire definitions and answers: the JSON item list an administrator writes, checked
before it is saved, and a patient's answers checked against it.

An item: {"link_id", "text" (French), "text_en", "text_de", "type", "required", "options"
(choice: [{"code", "display", "display_en", "display_de"}]), "min", "max" (integer, decimal),
"max_length" (string, text), "alert": {"op": ">=" | "<=" | "=", "value"}}.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from . import CareError

TYPES = ("choice", "integer", "decimal", "boolean", "string", "text")
ITEM_KEYS = {
    "link_id",
    "text",
    "text_en",
    "text_de",
    "type",
    "required",
    "options",
    "min",
    "max",
    "max_length",
    "alert",
}
OPTION_KEYS = {"code", "display", "display_en", "display_de"}
ALERT_OPS = (">=", "<=", "=")
LINK_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_ITEMS = 60
TEXT_MAX = 300
DEFAULT_MAX_LENGTH = {"string": 200, "text": 2000}
LIMIT_MAX_LENGTH = 5000
TRUE_WORDS = {"yes", "true", "1", "on", "oui", "ja"}
FALSE_WORDS = {"no", "false", "0", "off", "non", "nein"}


class ItemsError(CareError):
    """A questionnaire definition with problems (each a sentence in English, for admins)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class AnswerErrors(CareError):
    """Answers that do not fit the questions: {link_id: message} (shown next to each field)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(_("Some answers need your attention."))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _text_problems(where: str, obj: dict[str, Any], key: str) -> list[str]:
    problems = []
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty text")
    elif len(value) > TEXT_MAX:
        problems.append(f"{where}: {key} is longer than {TEXT_MAX} characters")
    for extra in (f"{key}_en", f"{key}_de"):
        if extra in obj and (not isinstance(obj[extra], str) or len(obj[extra]) > TEXT_MAX):
            problems.append(f"{where}: {extra} must be a text of at most {TEXT_MAX} characters")
    return problems


def _option_problems(where: str, options: Any) -> list[str]:
    if not isinstance(options, list) or len(options) < 2:
        return [f"{where}: a choice needs a list of at least two options"]
    problems: list[str] = []
    codes: set[str] = set()
    for index, option in enumerate(options):
        at = f"{where} option {index + 1}"
        if not isinstance(option, dict):
            problems.append(f"{at}: must be an object")
            continue
        unknown = sorted(set(option) - OPTION_KEYS)
        if unknown:
            problems.append(f"{at}: unknown key(s) {', '.join(unknown)}")
        code = option.get("code")
        if not isinstance(code, str) or not LINK_ID_RE.match(code):
            problems.append(f"{at}: code must be lower-case letters, digits, - or _")
        elif code in codes:
            problems.append(f"{at}: code {code!r} is used twice")
        else:
            codes.add(code)
        problems += _text_problems(at, option, "display")
    return problems


def _number_problems(where: str, item: dict[str, Any]) -> list[str]:
    problems = []
    kind = item["type"]
    for key in ("min", "max"):
        if key in item:
            value = item[key]
            if not _is_number(value) or (kind == "integer" and not isinstance(value, int)):
                problems.append(
                    f"{where}: {key} must be a{'' if kind == 'decimal' else 'n'} "
                    f"{'number' if kind == 'decimal' else 'integer'}"
                )
    if (
        _is_number(item.get("min"))
        and _is_number(item.get("max"))
        and Decimal(str(item["min"])) > Decimal(str(item["max"]))
    ):
        problems.append(f"{where}: min is larger than max")
    return problems


def _alert_problems(where: str, item: dict[str, Any]) -> list[str]:
    alert = item["alert"]
    kind = item["type"]
    if not isinstance(alert, dict) or set(alert) != {"op", "value"}:
        return [f"{where}: alert must be an object with op and value"]
    op, value = alert["op"], alert["value"]
    if op not in ALERT_OPS:
        return [f"{where}: alert op must be one of >=, <=, ="]
    if kind in ("integer", "decimal"):
        if not _is_number(value):
            return [f"{where}: the alert value must be a number"]
        return []
    if op != "=":
        return [f'{where}: a {kind} question alerts on one answer (op "=")']
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{where}: the alert value of a yes/no question is true or false"]
    if kind == "choice":
        codes = {o.get("code") for o in item.get("options") or [] if isinstance(o, dict)}
        if value not in codes:
            return [f"{where}: the alert value must be one of the option codes"]
    if kind in ("string", "text"):
        return [f"{where}: free-text questions cannot alert"]
    return []


def check_items(items: Any) -> list[dict[str, Any]]:
    """The items of a questionnaire, checked; ItemsError listing every problem otherwise."""
    if not isinstance(items, list) or not items:
        raise ItemsError(["the questions must be a non-empty list"])
    if len(items) > MAX_ITEMS:
        raise ItemsError([f"a questionnaire has at most {MAX_ITEMS} questions"])
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"question {index + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        link_id = item.get("link_id")
        if isinstance(link_id, str) and LINK_ID_RE.match(link_id):
            where = f"question {index + 1} ({link_id})"
            if link_id in seen:
                problems.append(f"{where}: link_id is used twice")
            seen.add(link_id)
        else:
            problems.append(f"{where}: link_id must be lower-case letters, digits, - or _")
        unknown = sorted(set(item) - ITEM_KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        problems += _text_problems(where, item, "text")
        kind = item.get("type")
        if kind not in TYPES:
            problems.append(f"{where}: type must be one of {', '.join(TYPES)}")
            continue
        if "required" in item and not isinstance(item["required"], bool):
            problems.append(f"{where}: required must be true or false")
        if kind == "choice":
            problems += _option_problems(where, item.get("options"))
        elif "options" in item:
            problems.append(f"{where}: only choice questions have options")
        if kind in ("integer", "decimal"):
            problems += _number_problems(where, item)
        elif "min" in item or "max" in item:
            problems.append(f"{where}: only number questions have min and max")
        if kind in ("string", "text"):
            size = item.get("max_length", DEFAULT_MAX_LENGTH[kind])
            if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 5000:
                problems.append(f"{where}: max_length must be a whole number from 1 to 5000")
        elif "max_length" in item:
            problems.append(f"{where}: only text questions have max_length")
        if "alert" in item:
            problems += _alert_problems(where, item)
    if problems:
        raise ItemsError(problems)
    return items


# ---------------------------------------------------------------------------------------------
# Texts in the reader's language


def item_text(item: dict[str, Any], language: str | None = None) -> str:
    return _localized(item, "text", language)


def option_text(option: dict[str, Any], language: str | None = None) -> str:
    return _localized(option, "display", language)


def _localized(obj: dict[str, Any], key: str, language: str | None) -> str:
    language = (language or get_language() or "fr")[:2]
    value = obj.get(f"{key}_{language}") if language in ("en", "de") else ""
    return str(value or obj.get(key) or "")


def answer_display(item: dict[str, Any], value: Any, language: str | None = None) -> str:
    """An answer as a reader sees it, in their language."""
    if value is None or value == "":
        return "—"
    if item["type"] == "boolean":
        return _("yes") if value else _("no")
    if item["type"] == "choice":
        for option in item.get("options", []):
            if option["code"] == value:
                return option_text(option, language)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Answers


def _as_bool(raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _check_number(item: dict[str, Any], raw: Any) -> tuple[Any, str]:
    integer = item["type"] == "integer"
    if isinstance(raw, bool):
        return None, _("Enter a number.")
    try:
        number = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        return None, _("Enter a whole number.") if integer else _("Enter a number.")
    if integer and number != number.to_integral_value():
        return None, _("Enter a whole number.")
    low, high = item.get("min"), item.get("max")
    if (
        low is not None
        and number < Decimal(str(low))
        or high is not None
        and number > Decimal(str(high))
    ):
        if low is not None and high is not None:
            return None, _("Enter a number from %(min)s to %(max)s.") % {"min": low, "max": high}
        if low is not None:
            return None, _("Enter a number of at least %(min)s.") % {"min": low}
        return None, _("Enter a number of at most %(max)s.") % {"max": high}
    if integer:
        return int(number), ""
    return format(number.normalize(), "f"), ""


def check_answer(item: dict[str, Any], raw: Any) -> tuple[Any, str]:
    """One answer as stored ({link_id: value}), or the message saying what is wrong."""
    kind = item["type"]
    empty = raw is None or (isinstance(raw, str) and not raw.strip())
    if empty:
        if item.get("required"):
            return None, _("Please answer this question.")
        return None, ""
    if kind in ("integer", "decimal"):
        return _check_number(item, raw)
    if kind == "boolean":
        value = _as_bool(raw)
        return (value, "") if value is not None else (None, _("Answer yes or no."))
    if kind == "choice":
        codes = [option["code"] for option in item.get("options", [])]
        return (raw, "") if raw in codes else (None, _("Choose one of the answers."))
    if not isinstance(raw, str):
        return None, _("Write your answer as text.")
    text = raw.strip()
    size = item.get("max_length", DEFAULT_MAX_LENGTH[kind])
    if len(text) > size:
        return None, _("Your answer is too long (%(n)s characters at most).") % {"n": size}
    return text, ""


def check_answers(items: list[dict[str, Any]], data: Any) -> dict[str, Any]:
    """The answers to store, or AnswerErrors with a message per question."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if not hasattr(data, "get"):
        raise AnswerErrors({"": _("The answers could not be read.")})
    for item in items:
        value, error = check_answer(item, data.get(item["link_id"]))
        if error:
            errors[item["link_id"]] = error
        elif value is not None:
            answers[item["link_id"]] = value
    if errors:
        raise AnswerErrors(errors)
    return answers


def meets_alert(item: dict[str, Any], value: Any) -> bool:
    """Whether a stored answer is one the care team must see."""
    alert = item.get("alert")
    if not alert or value is None:
        return False
    op, limit = alert["op"], alert["value"]
    if item["type"] in ("integer", "decimal"):
        number, reference = Decimal(str(value)), Decimal(str(limit))
        return {
            ">=": number >= reference,
            "<=": number <= reference,
            "=": number == reference,
        }[op]
    return bool(value == limit)


def alerting_items(items: list[dict[str, Any]], answers: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in items if meets_alert(item, answers.get(item["link_id"]))]
