"""Business logic of secure messaging, one module per area."""

from __future__ import annotations


class MessagingError(Exception):
    """A change that cannot be made; the message is shown to the user."""
