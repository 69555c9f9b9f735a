"""Typed readers for environment variables that fail loudly on bad values."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """A configuration variable holds a value that cannot be used."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    source = os.environ if environ is None else environ
    return source.get(name)


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected one of 1/0, true/false, yes/no, on/off; got {value!r}")


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    minimum: int | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(name, f"expected an integer; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(name, f"must be at least {minimum}; got {number}")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Read NAME, or the content of the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    value = _raw(name, environ)
    file_name = _raw(f"{name}_FILE", environ)
    if value and file_name:
        raise ConfigError(name, f"set either {name} or {name}_FILE, not both")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"{name}_FILE", f"cannot read {file_name!r}: {error}") from None
    return value.strip() if value else None


def env_url(
    name: str,
    schemes: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Read a URL whose scheme must be one of `schemes`; unset or empty gives None."""
    from urllib.parse import urlsplit

    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise ConfigError(name, f"not a valid URL: {error}") from None
    if parts.scheme not in schemes:
        raise ConfigError(
            name, f"scheme must be one of {', '.join(schemes)}; got {parts.scheme or 'none'!r}"
        )
    if not parts.hostname and parts.scheme not in ("sqlite",):
        raise ConfigError(name, "the URL names no host")
    return value


def env_opening_hours(
    name: str, default: str, environ: Mapping[str, str] | None = None
) -> tuple[frozenset[int], dt.time, dt.time]:
    """Weekly opening hours written "1-5 08:00-18:00" (ISO weekdays, 1 = Monday; days may also
    be a list, "1,2,4"): the set of weekdays (1-7), the opening and the closing time."""
    value = (_raw(name, environ) or "").strip() or default
    bad = ConfigError(name, f'expected days and hours like "1-5 08:00-18:00"; got {value!r}')
    try:
        days_text, hours_text = value.split()
        days: set[int] = set()
        for part in days_text.split(","):
            first, _dash, last = part.partition("-")
            days.update(range(int(first), int(last or first) + 1))
        opens_text, closes_text = hours_text.split("-")
        opens, closes = dt.time.fromisoformat(opens_text), dt.time.fromisoformat(closes_text)
    except ValueError:
        raise bad from None
    if not days or not days <= set(range(1, 8)) or opens >= closes:
        raise bad
    return frozenset(days), opens, closes


def env_times(
    name: str,
    default: list[str],
    *,
    count: tuple[int, int] = (1, 24),
    increasing: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Wall times written "08:00,12:00,18:00" (HH:MM, 24-hour), between count[0] and count[1]
    of them (in increasing order when asked); returned as written, each checked."""
    raw = _raw(name, environ)
    values = [v.strip() for v in raw.split(",") if v.strip()] if raw and raw.strip() else default
    low, high = count
    if not low <= len(values) <= high:
        raise ConfigError(name, f"expected {low} to {high} times like 08:00; got {len(values)}")
    for value in values:
        try:
            if len(value) != 5:
                raise ValueError(value)
            dt.time.fromisoformat(value)
        except ValueError:
            raise ConfigError(name, f"expected times like 08:00 (HH:MM); got {value!r}") from None
    if increasing and any(a >= b for a, b in zip(values, values[1:], strict=False)):
        raise ConfigError(name, f"the times must follow each other through the day; got {raw!r}")
    return values
