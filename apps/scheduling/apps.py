from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SchedulingConfig(AppConfig):
    name = "apps.scheduling"
    label = "scheduling"
    verbose_name = _("Scheduling")

    def ready(self) -> None:
        from apps.notifications.services import register_attachments

        from . import timeline  # noqa: F401 - registers the appointment entries of the timeline
        from .services.events import appointment_attachments

        # Appointment emails carry the event as an .ics file.
        register_attachments("appointment", appointment_attachments)
