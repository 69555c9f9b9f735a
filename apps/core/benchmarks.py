"""What the `bench_*` commands share: positive-number options, and the frame of a run (the
machine's facts, the clean-up of the bench's own rows, the audit rows it added)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Max


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def database_name() -> str:
    """The database and its version, as a benchmark reports it."""
    if connection.vendor == "postgresql":
        version = connection.pg_version  # type: ignore[attr-defined]
        return f"PostgreSQL {version // 10000}.{version % 10000}"
    return connection.vendor


@contextmanager
def bench_run(*, keep: bool, clean_up: Callable[[], None]) -> Iterator[dict[str, Any]]:
    """The result dict of a run, with the machine's facts; the bench's rows are removed before
    (an interrupted run's leftovers would skew the figures) and after (unless `keep`)."""
    from apps.audit.models import AuditEvent

    clean_up()
    audit_mark = AuditEvent.objects.aggregate(top=Max("seq"))["top"] or 0
    result: dict[str, Any] = {
        "database": database_name(),
        "cpus": os.cpu_count(),
        "debug": settings.DEBUG,
        # Other work on the machine shows in the times: the load at the start and at the end.
        "load_average": [round(os.getloadavg()[0], 2)],
    }
    try:
        yield result
    finally:
        if keep:
            result["kept"] = True
        else:
            started = time.perf_counter()
            clean_up()
            result["cleanup_seconds"] = round(time.perf_counter() - started, 1)
    result["audit_rows_added"] = AuditEvent.objects.filter(seq__gt=audit_mark).count()
    result["load_average"].append(round(os.getloadavg()[0], 2))
