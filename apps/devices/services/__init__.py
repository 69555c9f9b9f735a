"""Remote-monitoring services: the device registry and the ingestion of readings."""

from __future__ import annotations


class DeviceError(Exception):
    """A registry action that is not allowed; the message is shown to the user."""
