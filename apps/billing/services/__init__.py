"""Business logic of billing, one module per area."""

from __future__ import annotations


class BillingError(Exception):
    """A billing change that cannot be made; the message is shown to the user."""
