from django.urls import path

from . import views

urlpatterns = [
    path("2fa/setup/", views.two_factor_setup, name="two_factor_setup"),
    path("2fa/verify/", views.two_factor_verify, name="two_factor_verify"),
    path("2fa/backup-codes/", views.regenerate_backup_codes, name="regenerate_backup_codes"),
    path("2fa/disable/", views.disable_two_factor, name="disable_two_factor"),
    path("profile/", views.profile, name="profile"),
    path("security/", views.security, name="security"),
    path("invitation/<str:secret>/", views.accept_invitation, name="accept_invitation"),
    path("keepalive/", views.keepalive, name="keepalive"),
]
