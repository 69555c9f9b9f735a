from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TeleconsultConfig(AppConfig):
    name = "apps.teleconsult"
    label = "teleconsult"
    verbose_name = _("Video consultations")

    def ready(self) -> None:
        from . import fhir, signals, timeline  # noqa: F401 - receivers, FHIR extras, timeline
