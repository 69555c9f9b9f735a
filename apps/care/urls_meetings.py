"""Care coordination pages: meetings."""

from django.urls import URLPattern, path

from .views_pending import pending

urlpatterns: list[URLPattern] = [
    path("clinic/meetings/", pending, name="meetings"),
]
