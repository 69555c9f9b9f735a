from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from oauth2_provider import views as oauth2_views

from apps.accounts import views as account_views
from apps.core import views as core_views

api_v1 = [
    path("", include("apps.accounts.api_urls")),
    path("", include("apps.notifications.api_urls")),
    path("", include("apps.records.api_urls")),
    path("", include("apps.devices.api_urls")),
    path("", include("apps.scheduling.api_urls")),
    path("", include("apps.messaging.api_urls")),
    path("", include("apps.care.api_urls")),
]

urlpatterns = [
    path("", include("apps.core.urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    # Before Django's own: the switch also saves the language on the signed-in account.
    path("i18n/setlang/", account_views.set_language, name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/", include("apps.accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("", include("apps.records.urls")),
    path("", include("apps.interop.urls")),
    path("", include("apps.devices.urls")),
    path("", include("apps.scheduling.urls")),
    path("", include("apps.teleconsult.urls")),
    path("", include("apps.messaging.urls")),
    path("", include("apps.billing.urls")),
    path("", include("apps.care.urls")),
    # OAuth2 for backend systems of the FHIR API (client-credentials grant only).
    path("o/token/", oauth2_views.TokenView.as_view(), name="oauth2-token"),
    path("o/revoke_token/", oauth2_views.RevokeTokenView.as_view(), name="oauth2-revoke"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
