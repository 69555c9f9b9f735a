"""Care coordination in the admin: each area registers its models in its own module."""

from . import followup, meetings, plans, support, tasks  # noqa: F401
