"""Care coordination services: plain functions that pages, the API, tasks and commands call."""


class CareError(Exception):
    """A care-coordination change that cannot be made; the message is shown to the user."""
