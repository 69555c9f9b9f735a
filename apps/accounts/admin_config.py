from django.contrib.admin.apps import AdminConfig


class HospitalAdminConfig(AdminConfig):
    """The admin app, with a site that requires a verified second factor."""

    default_site = "apps.accounts.admin_site.HospitalAdminSite"
