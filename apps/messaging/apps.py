from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MessagingConfig(AppConfig):
    name = "apps.messaging"
    label = "messaging"
    verbose_name = _("Secure messaging")

    def ready(self) -> None:
        # The timeline registers its source; the FHIR mapping is loaded with the app.
        from . import fhir, timeline  # noqa: F401
