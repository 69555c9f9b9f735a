from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DevicesConfig(AppConfig):
    name = "apps.devices"
    label = "devices"
    verbose_name = _("Remote monitoring")

    def ready(self) -> None:
        from . import timeline  # noqa: F401 - registers the alert entries of the timeline
