from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        # The timeline registers its sources (the patient's invoices, payments, credit notes).
        from . import timeline  # noqa: F401
