from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CareConfig(AppConfig):
    name = "apps.care"
    label = "care"
    verbose_name = _("Care coordination")

    def ready(self) -> None:
        # The timeline registers its sources; the FHIR mapping is loaded with the app.
        from . import fhir, timeline  # noqa: F401
