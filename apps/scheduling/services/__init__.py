"""Scheduling services: slot computation, booking, changes, reminders, waiting list, feeds."""

from __future__ import annotations

from typing import Any


class SchedulingError(Exception):
    """A booking or change that is not allowed; the message is shown to the user."""


class SlotTaken(SchedulingError):
    """Someone else got the time first (or it overlaps); `alternatives` are free slots nearby."""

    def __init__(self, message: str, alternatives: list[Any] | None = None) -> None:
        super().__init__(message)
        self.alternatives = alternatives or []
