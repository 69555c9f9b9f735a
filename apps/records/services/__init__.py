"""Business logic of the patient record, one module per area."""

from __future__ import annotations


class RecordError(Exception):
    """A change to the record that cannot be made; the message is shown to the user."""
