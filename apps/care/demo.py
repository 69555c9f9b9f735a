"""Demo care coordination (seed_demo; idempotent; after the records, scheduling, devices and
messaging demos): each area seeds its part, in an order where later parts can use earlier ones.
"""

from __future__ import annotations

from typing import Any


def seed(context: dict[str, Any]) -> None:
    from . import demo_followup, demo_meetings, demo_plans, demo_support, demo_tasks
    from .reference import load_care_reference

    load_care_reference()
    for part in (demo_plans, demo_tasks, demo_meetings, demo_followup, demo_support):
        part.seed(context)
