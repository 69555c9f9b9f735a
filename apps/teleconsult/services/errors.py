"""Refusals of the record side of a consultation, by the HTTP status the JSON API answers.

Each is a `ConsultError`, so callers that only show the message need not know the kinds.
"""

from __future__ import annotations

from . import ConsultError


class NotAllowed(ConsultError):
    """The person is in the room but their seat may not do this (the API answers 404)."""


class Conflict(ConsultError):
    """The room's state forbids it now: consents missing, a recording running… (409)."""


class TooLarge(ConsultError):
    """The upload is over its limit (413)."""
